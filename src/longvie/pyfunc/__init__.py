"""The served model's format, below training so that training can register versions without
importing the runtime: how a weights folder becomes an MLflow pyfunc model folder, what a request
row holds, and what the folder keeps of the config. The runtime that loads it and generates is
:mod:`longvie.serving`."""
