"""Built-in dataset specs (YAML), loaded by name with :func:`leadscore.specs.load_spec`."""
