"""The registered generator as an MLflow pyfunc model: logged from code, loaded by alias,
served over REST by ``mlflow models serve``."""
