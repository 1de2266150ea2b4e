"""Reference heads with their own weights -> the aucues method heads (docs/method.md §11-12,
train/methods/). Each converter checks the head's keys and shapes, renames them under `head.` and
takes the method options from config_model.yaml; train/methods validates them (one line if a
released value is outside what aucues implements)."""

from __future__ import annotations

from aucues.errors import AucuesError
from aucues.train.reference_methods import (Conversion, MethodConverter, ReferenceSpec, check_keys, encoder_state,
                                            register_method, _width)


def _options(spec: ReferenceSpec, names: tuple[tuple[str, str], ...]) -> dict:
    return {ours: spec.options[theirs] for ours, theirs in names if theirs in spec.options}


def convert_wildcat(encoder: dict, head: dict, spec: ReferenceSpec) -> Conversion:
    w = head.get("to_modalities.weight")
    if w is None or w.ndim != 4 or w.shape[0] % spec.num_classes:
        raise AucuesError(f"classification_head of a WILDCAT model: expected to_modalities.weight "
                          f"[classes x modalities, {_width(spec)}, 1, 1], got {None if w is None else tuple(w.shape)}")
    m = w.shape[0] // spec.num_classes
    check_keys(head, {"to_modalities.weight": (m * spec.num_classes, _width(spec), 1, 1),
                      "to_modalities.bias": (m * spec.num_classes,)}, "classification_head of a WILDCAT model")
    opts = {"modalities": m, **_options(spec, (("kmax", "wc_kmax"), ("kmin", "wc_kmin"), ("alpha", "wc_alpha"))),
            # the released models were trained (and are evaluated) with the kmin term lost (§12)
            "reference_pooling": True}
    state = {f"head.{k}": v for k, v in head.items()}
    return Conversion({"method": "wildcat", "method_options": opts}, {**encoder_state(encoder), **state})


def convert_prm(encoder: dict, head: dict, spec: ReferenceSpec) -> Conversion:
    check_keys(head, {"conv.weight": (spec.num_classes, _width(spec), 1, 1), "conv.bias": (spec.num_classes,)},
               "classification_head of a PRM model")
    opts = _options(spec, (("ks", "prm_ks"), ("st", "prm_st")))
    return Conversion({"method": "prm", "method_options": opts},
                      {**encoder_state(encoder), **{f"head.{k}": v for k, v in head.items()}})


def convert_acol(encoder: dict, head: dict, spec: ReferenceSpec) -> Conversion:
    first = head.get("acol_pooler.classifier_A.0.weight")
    if first is None or first.ndim != 4:
        raise AucuesError("classification_head of an ACoL model: no acol_pooler.classifier_A.0.weight")
    hidden, width, c = first.shape[0], _width(spec), spec.num_classes
    shapes = {}
    for h in "AB":
        for i, (w, b) in {0: ((hidden, width, 3, 3), (hidden,)), 2: ((hidden, hidden, 3, 3), (hidden,)),
                          4: ((c, hidden, 1, 1), (c,))}.items():
            shapes[f"acol_pooler.classifier_{h}.{i}.weight"], shapes[f"acol_pooler.classifier_{h}.{i}.bias"] = w, b
    check_keys(head, shapes, "classification_head of an ACoL model")
    opts = {"hidden": hidden, **_options(spec, (("drop_threshold", "acol_drop_threshold"),))}
    state = {"head." + k[len("acol_pooler."):]: v for k, v in head.items()}
    return Conversion({"method": "acol", "method_options": opts}, {**encoder_state(encoder), **state})


register_method(MethodConverter("WILDCAT", "WildCatCLHead", convert_wildcat))
register_method(MethodConverter("PRM", "PRM", convert_prm))
register_method(MethodConverter("ACoL", "ACOL", convert_acol))
