-- When a command that leaves no other record of its own finished its work: `run` (a tick
-- whose steps all succeeded). Append-only; monitoring reads the latest per command.
CREATE TABLE command_successes (
    command     VARCHAR NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL
);
