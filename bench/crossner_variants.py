"""Phase 2 of the evidence protocol: the self-training variants, each a `PipelineConfig`.

One iteration of the pipeline's loop (`pipelines.loop.self_training.SelfTraining.iteration`) runs on D's
untagged train text, from the generalist seed of D; a variant is a set of the loop's features
(`Features`), each switched on through the config the pipeline already reads:

    ensemble     weak_label.views.synonyms + data.label_synonyms (SYNONYMS): GLiNER runs once per
                 prompt view (names, 1st synonyms, 2nd synonyms), each view a weak source
    label_model  merge.label_model = Dawid-Skene over the weak sources, instead of the union policy
    soft         merge.soft_targets: train towards each span's probability instead of 1
    calibrated   per-label thresholds calibrated on dev half A: for the start model (they decide
                 which spans are weak labels; merge.min_score drops to the threshold floor so that
                 the global 0.5 does not override them) and for the trained model (eval.calibrate)
    replay       loop.replay: gold rows of the leave-D-out generalist mix, 0.25 x the weak rows
    balance      merge.max_label_share: rows whose labels all hold more than 30 % of the spans are
                 subsampled
    labeling_functions
                 weak_label.labeling_functions: the gazetteers and regular expressions of
                 `bench/crossner_rules.py` (our own words and pycountry), each one more weak source

`hard` has none of them (GLiNER with the label names, global threshold 0.5, hard labels); `all` has
every one; the ablations add one feature to `hard`. Every setting here was fixed before any result
was seen; nothing is tuned on dev half B.

The synonyms are written by us, from what the label means in general (no sentence of any CrossNER
split was read to write them, and no gold span is used).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from bench.crossner_rules import labeling_functions
from pipelines import PipelineConfig, TrainConfig

REPLAY_SHARE = 0.25
MAX_LABEL_SHARE = 0.3
THRESHOLD = 0.5
THRESHOLD_FLOOR = 0.1
# the iteration trains like the generalist stage did (its rates, no label smoothing), one epoch
TRAIN = TrainConfig(
    max_epochs=1,
    batch_size=8,
    lr_encoder=1e-4,
    lr_heads=1e-3,
    label_smoothing=0.0,
    cpus_per_worker=1,
    torch_threads=1,
)

# label -> two other ways to ask for it, in our own words (general meaning of the type, nothing read
# from the data). Each rank is one prompt view; two labels never share a prompt within a view.
SYNONYMS: dict[str, list[str]] = {
    "person": ["name of a person", "individual human being"],
    "organisation": ["organization", "company, agency or institution"],
    "location": ["place", "geographic region, city or landmark"],
    "country": ["nation", "sovereign state"],
    "miscellaneous": ["other named entity", "named thing of another kind"],
    "event": ["named event", "historical or sporting occurrence"],
    "award": ["prize", "honour or award given to someone"],
    "election": ["electoral contest", "vote to choose a government or office holder"],
    "political party": ["party", "political organization that contests elections"],
    "politician": ["political leader", "elected official or holder of political office"],
    "album": ["record album", "music album title"],
    "band": ["musical group", "group of musicians"],
    "musical artist": ["musician", "singer or instrumentalist"],
    "musical instrument": ["instrument", "device played to make music"],
    "music genre": ["style of music", "musical style or genre"],
    "song": ["song title", "track or single"],
    "academic journal": ["scientific journal", "scholarly periodical"],
    "astronomical object": ["celestial body", "planet, star, galaxy or comet"],
    "chemical compound": ["compound", "chemical substance made of several elements"],
    "chemical element": ["element", "element of the periodic table"],
    "discipline": ["field of study", "academic discipline or branch of science"],
    "enzyme": ["catalytic protein", "enzyme name"],
    "protein": ["protein name", "polypeptide"],
    "scientist": ["researcher in the sciences", "physicist, chemist, biologist or other scientist"],
    "theory": ["scientific theory", "theory, law or hypothesis"],
    "university": ["college", "university or academic institution"],
    "book": ["book title", "novel or other published book"],
    "literary genre": ["genre of writing", "kind of literature"],
    "magazine": ["periodical", "magazine title"],
    "poem": ["poem title", "work of poetry"],
    "writer": ["author", "novelist, poet or playwright"],
    "algorithm": ["method or procedure", "computational algorithm"],
    "conference": ["scientific conference", "academic meeting or symposium"],
    "field": ["research area", "field of computer science"],
    "metrics": ["evaluation measure", "performance metric"],
    "product": ["commercial product", "software, device or system sold or released"],
    "programming language": ["computer language", "language for writing programs"],
    "researcher": ["academic researcher", "computer scientist or AI researcher"],
    "task": ["problem", "machine learning task"],
}


@dataclass(frozen=True)
class Features:
    ensemble: bool = False
    label_model: bool = False
    soft: bool = False
    calibrated: bool = False
    replay: bool = False
    balance: bool = False
    labeling_functions: bool = False

    def describe(self) -> str:
        on = [name.replace("_", " ") for name, value in asdict(self).items() if value]
        return "hard + " + ", ".join(on) if on else "hard"


ALL = Features(True, True, True, True, True, True)
VARIANTS: dict[str, Features] = {
    "hard": Features(),
    "all": ALL,
    # one change at a time from `hard`
    "ensemble": Features(ensemble=True),
    "label-model": Features(label_model=True),
    "soft": Features(soft=True),
    "calibrated": Features(calibrated=True),
    "replay": Features(replay=True),
    "balance": Features(balance=True),
    # calibrated thresholds plus the gazetteers and rules of bench/crossner_rules.py
    "lf": Features(calibrated=True, labeling_functions=True),
}


def variant_config(
    features: Features,
    *,
    name: str,
    seed: int,
    labels: list[str],
    corpus: Path,
    dev_a: Path,
    start_model: str,
    storage: Path,
    tracking_uri: str,
) -> PipelineConfig:
    """The pipeline config of one variant run: one iteration from `start_model` on `corpus`; dev half A
    is the loop's dev set (selection, promotion decision) and the calibration set."""
    merge: dict = {
        "label_model": {"method": "dawid_skene"} if features.label_model else None,
        "soft_targets": features.soft,
        "max_label_share": MAX_LABEL_SHARE if features.balance else 1.0,
        "min_score": THRESHOLD_FLOOR if features.calibrated else THRESHOLD,
    }
    return PipelineConfig.model_validate(
        {
            "name": name,
            "seed": seed,
            "storage_path": str(storage),
            "data": {
                "corpus": str(corpus),
                "dev_gold": str(dev_a),
                "seed_gold": None,  # replay rows are the generalist's own mix, set on the job
                "labels": labels,
                "label_synonyms": {label: SYNONYMS[label] for label in labels} if features.ensemble else {},
            },
            "weak_label": {
                "views": {"synonyms": features.ensemble},
                # GLiNER's views only, unless the variant adds our gazetteers and rules
                "labeling_functions": labeling_functions(labels) if features.labeling_functions else {},
                "cpus_per_worker": 1,
            },
            "merge": merge,
            "train": TRAIN.model_dump(),
            "eval": {
                "threshold": THRESHOLD,
                "calibrate": features.calibrated,
                "calibration_gold": str(dev_a),
                "threshold_floor": THRESHOLD_FLOOR,
            },
            "loop": {
                "iterations": 1,
                "start_from": start_model,
                "replay": REPLAY_SHARE if features.replay else 0.0,
                # the students are kept as trained: bench/crossner_interpolation.py mixes them with
                # the seed afterwards, the way the loop's interpolate stage (default since) does
                "interpolation": [],
            },
            "tracking": {
                "tracking_uri": tracking_uri,
                "experiment": "crossner-evidence",
                "registered_model": f"evidence-{name}",
                "sample_predictions": 0,
            },
        }
    )
