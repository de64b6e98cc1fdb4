"""The pyfunc model and the REST server (src/longvie/serving, pyfunc)."""
