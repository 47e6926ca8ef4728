"""Example gmkit plugin (see plugin.py for the registration, model.py for the model)."""
