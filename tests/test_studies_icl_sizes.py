"""The ICL family's typed sizes (``theorybench.studies.icl.sizes``): one instance per scale, tiny included;
fields named as the config fields they set, and reaching those configs unchanged; and the sizes hash
that stamps every saved figure, unchanged by the move to typed sizes (a changed hash marks the
committed medium results stale, ``theorybench claims``)."""

import dataclasses

import pytest

from theorybench import registry
from theorybench.experiment import OptimConfig, TrainConfig
from theorybench.figures import figure_sizes_hash
from theorybench.provenance import sizes_hash
from theorybench.studies.icl import sizes as S
from theorybench.studies.icl.experiments import class_configs, diversity_configs, garg_configs
from toy_models import TransformerConfig
from toy_models.tasks.icl_regression import ICLRegressionConfig

registry.load_studies()
TABLES = {"GARG": S.GARG, "ESTIMATOR_ERRORS": S.ESTIMATOR_ERRORS, "TRAINED_LSA": S.TRAINED_LSA,
          "TASK_DIVERSITY": S.TASK_DIVERSITY, "FUNCTION_CLASSES": S.FUNCTION_CLASSES, "PROBE_R2": S.PROBE_R2,
          "OOD_SHIFTS": S.OOD_SHIFTS}

# figure_sizes_hash of every ICL figure at every scale as computed on a6ef5a6, before the sizes were typed
# (from the plain dicts then in each figure's module). The medium ICL run was started from that commit.
HASHES_BEFORE_TYPED_SIZES = {
    "icl_estimator_errors": dict(tiny="378a46947ec00b2a", quick="c8e30b16533a7043", medium="be88fcd3fa6a4d69",
                                 full="cddaacd567d16ebc"),
    "icl_lsa_trained_vs_gd": dict(tiny="29f56d1b0415fbe6", quick="b573d1fd3426e0ef", medium="f7dba4f1dc47acde",
                                  full="8f2c619025332023"),
    "icl_task_diversity": dict(tiny="5cb55fc72a4e4d9e", quick="dcc2a00a68fdcc6d", medium="15e623ec30e7af12",
                               full="d176925c29300e1a"),
    "icl_probe_r2": dict(tiny="1e5bf0b0f03ea65a", quick="082cb983a730b497", medium="1c74ac85dfb480e6",
                         full="191d9f6f184ff47c"),
    "icl_ood_shifts": dict(tiny="deb1c89f9dd95627", quick="7ca0e719899ed6a8", medium="4adc613b51004f06",
                           full="3d0313acbf110ff3"),
    # medium: a579f36c1c298cec on a6ef5a6; changed on purpose since (issue 18): 15000 training steps, not 5000
    # (ffd08df1e0819d3a), then a 4-layer decision-tree model (the classes share one sizes table, so all three move).
    **{f"icl_{cls}": dict(tiny="d9fd03dac89315d5", quick="27c0e683655cfe50", medium="9268751469bc09f3",
                          full="2c59eb0ab159af43") for cls in ("sparse_linear", "decision_tree", "relu_network")},
}


def test_every_table_has_one_frozen_size_per_scale_tiny_first_class():
    for name, table in TABLES.items():
        assert tuple(table) == registry.SCALES, name
        for scale, size in table.items():
            assert dataclasses.is_dataclass(size) and type(size).__dataclass_params__.frozen, (name, scale)
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(size, dataclasses.fields(size)[0].name, None)


@pytest.mark.parametrize("figure", sorted(HASHES_BEFORE_TYPED_SIZES))
def test_figure_sizes_hash_is_the_one_recorded_before_the_sizes_were_typed(figure):
    spec = registry.get_figure(figure)
    assert {scale: figure_sizes_hash(spec, scale) for scale in registry.SCALES} == HASHES_BEFORE_TYPED_SIZES[figure]


def _fields(size):
    """(dotted name, value) of every leaf field; a curriculum that is off (every = None) counts as one field,
    its other curriculum_* fields being unused then."""
    for f in dataclasses.fields(size):
        value = getattr(size, f.name)
        if dataclasses.is_dataclass(value):
            yield from ((f"{f.name}.{sub}", v) for sub, v in _fields(value))
        elif not (f.name.startswith("curriculum_") and f.name != "curriculum_every" and size.curriculum_every is None):
            yield f.name, value


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return value + (value[-1],) if value else (1,)
    return 7  # None: an optional field switched on


def _replace(size, dotted: str, value):
    head, _, rest = dotted.partition(".")
    return dataclasses.replace(size, **{head: _replace(getattr(size, head), rest, value) if rest else value})


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_field_of_a_size_moves_its_sizes_hash(name):
    """A field left out of ``recorded()`` would let a result whose sizes changed pass as current."""
    size = TABLES[name]["full"]  # full has the curriculum on, so the curriculum fields are recorded too
    before = sizes_hash(size.recorded())
    for dotted, value in _fields(size):
        assert sizes_hash(_replace(size, dotted, _changed(value)).recorded()) != before, (name, dotted)


_CONFIG_FIELDS = {
    "task": {f.name for f in dataclasses.fields(ICLRegressionConfig)},
    "model": {f.name for f in dataclasses.fields(TransformerConfig)},
    "optim": {f.name for f in dataclasses.fields(OptimConfig)},
    "train": {f.name for f in dataclasses.fields(TrainConfig)},
}


def _check_reaches_config(size, cfg):
    """Every field of ``size`` named as a config field carries its value into that config unchanged."""
    matched = 0
    for f in dataclasses.fields(size):
        for part, names in _CONFIG_FIELDS.items():
            if f.name in names:
                assert getattr(getattr(cfg, part), f.name) == getattr(size, f.name), (part, f.name)
                matched += 1
    return matched


@pytest.mark.parametrize("scale", registry.SCALES)
def test_config_named_fields_reach_the_configs(scale):
    # d, n_points, n_layers, d_model, n_heads, init, lr, warmup_steps, steps, batch_size (+ noise_std): ≥ 10 each.
    assert _check_reaches_config(S.GARG[scale], garg_configs(S.GARG[scale])[0]) >= 10
    assert _check_reaches_config(S.TASK_DIVERSITY[scale], diversity_configs(S.TASK_DIVERSITY[scale])[0]) >= 10
    sizes = S.FUNCTION_CLASSES[scale]
    for cls in ("sparse_linear", "decision_tree", "relu_network"):
        cfg = class_configs(cls, sizes)[0]
        size = sizes.of(cls)
        assert _check_reaches_config(size, cfg) >= 9
        param = {"sparse_linear": "sparsity", "decision_tree": "depth", "relu_network": "hidden"}[cls]
        assert getattr(cfg.task, param) == getattr(size, param)
        if size.curriculum_every is not None:
            assert (cfg.task.curriculum_every, cfg.task.curriculum_d_start, cfg.task.curriculum_n_start) == (
                size.curriculum_every, size.curriculum_d_start, size.curriculum_n_start)
