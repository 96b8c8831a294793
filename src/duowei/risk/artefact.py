"""The model artefact: a versioned directory a scorer can serve from.

```
DIR/metadata.json    version, date, data hash, target, features, dropped columns, metrics, policy
DIR/features.json    engineered feature specifications
DIR/scorecard.json   points table, scaling, calibration
DIR/gbm.txt          LightGBM model text (trimmed to the best iteration)
DIR/gbm.json         GBM feature order, categorical WoE maps, calibration
DIR/stability.json   training distributions of the scores (PSI baseline)
DIR/split.csv        row number -> train/test part of the 70/30 split
DIR/report.html      validation report
```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from duowei.errors import InvalidInput, NotFound
from duowei.risk.calibration import Calibration
from duowei.risk.features import FeatureSpec
from duowei.risk.master_scale import MasterScale
from duowei.risk.scorer import GBMScorer, ScorecardScorer

ARTEFACT_FORMAT: Final = "duowei-risk-model/1"
FILES: Final = ("metadata.json", "features.json", "scorecard.json", "gbm.txt", "gbm.json")


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", "utf-8")


def model_version(*, card: dict[str, Any], gbm_text: str, date_text: str) -> str:
    """Date plus a content hash: the same model files give the same version."""
    digest = hashlib.sha256(json.dumps(card, sort_keys=True).encode() + gbm_text.encode())
    return f"{date_text.replace('-', '')}-{digest.hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    directory: Path
    metadata: dict[str, Any]
    specs: tuple[FeatureSpec, ...]
    card: dict[str, Any]
    gbm_meta: dict[str, Any]
    gbm_text: str
    stability: dict[str, Any]
    master_scale: MasterScale

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    def scorecard(self) -> ScorecardScorer:
        return ScorecardScorer(
            self.card,
            specs=self.specs,
            calibration=Calibration.from_dict(self.card["calibration"]),
            master_scale=self.master_scale,
        )

    def gbm(self) -> GBMScorer:
        scaling = self.card["scaling"]
        return GBMScorer(
            self.gbm_text,
            self.gbm_meta,
            specs=self.specs,
            calibration=Calibration.from_dict(self.gbm_meta["calibration"]),
            master_scale=self.master_scale,
            factor=float(scaling["factor"]),
            offset=float(scaling["offset"]),
        )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise NotFound(f"model file {path} is missing") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"model file {path} is not valid JSON: {exc}") from None


def load_model(directory: Path) -> LoadedModel:
    if not directory.is_dir():
        raise NotFound(f"model directory {directory} does not exist")
    metadata = _read_json(directory / "metadata.json")
    if metadata.get("format") != ARTEFACT_FORMAT:
        raise InvalidInput(f"{directory} is not a {ARTEFACT_FORMAT} artefact")
    gbm_path = directory / "gbm.txt"
    if not gbm_path.exists():
        raise NotFound(f"model file {gbm_path} is missing")
    return LoadedModel(
        directory=directory,
        metadata=metadata,
        specs=tuple(FeatureSpec.from_dict(d) for d in _read_json(directory / "features.json")),
        card=_read_json(directory / "scorecard.json"),
        gbm_meta=_read_json(directory / "gbm.json"),
        gbm_text=gbm_path.read_text("utf-8"),
        stability=_read_json(directory / "stability.json"),
        master_scale=MasterScale.from_dict(metadata["master_scale"]),
    )
