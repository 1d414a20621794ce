"""gonogo.toml: the schema, and finding, loading and validating the file."""

from gonogo.config.load import find_config, load_config
from gonogo.config.schema import Config

__all__ = ["Config", "find_config", "load_config"]
