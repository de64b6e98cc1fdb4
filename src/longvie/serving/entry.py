"""The model file MLflow logs for every registered version ("models from code").

MLflow stores this file, not a pickled object; loading the model runs it, and ``set_model``
hands MLflow the :class:`LongvieVideoModel` that reads the version's weights artifact.
"""

from mlflow.models import set_model

from longvie.serving.video_model import LongvieVideoModel

set_model(LongvieVideoModel())
