"""The catalogue of named model specifications, installed as ``alsfrs.specs``.

Each ``*.toml`` file here is one prespecified analysis; load it with
``alsfrs.load_spec(name)``.
"""
