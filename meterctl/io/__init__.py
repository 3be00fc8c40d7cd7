"""Files in and out: naming the inputs, reading them in chunks, writing outputs atomically."""
