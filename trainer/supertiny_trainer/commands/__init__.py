"""One module per command: a config dataclass and a runner with `run() -> CommandResult`."""
