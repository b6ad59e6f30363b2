"""Ways of running and compiling flows (import name flowkit.backends): ``runners/`` and
``compilers/``, with their contracts in ``base``. Imports the core; the core never imports them."""
