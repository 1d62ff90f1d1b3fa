"""The ``medseg`` command line. Each command lives in its own module with a ``register(app)`` function;
``main`` discovers them, so adding a command never edits a shared list. Only this package imports typer."""
