"""LoRA adapters for RVC: exact low-rank deltas (weight-norm aware) on Linear,
Conv1d and ConvTranspose1d; injection by name/preset; the adapter file; merge,
unmerge, blend and hot-swap.  Depends on torch and safetensors, and of rvclora only on
rvclora.errors (bad input raises its typed errors)."""
from .adapter_file import (
    FORMAT,
    FORMAT_VERSION,
    Adapter,
    AdapterError,
    AdapterNeedsForce,
    AdapterWarning,
    BaseInfo,
    check_adapter,
    extract_adapter,
    fingerprint,
    load_adapter,
    model_fingerprint,
    save_adapter,
)
from .inject import (
    base_state_dict,
    canonical_key,
    freeze,
    inject,
    lora_modules,
    lora_state_dict,
    parameter_counts,
    trainable_parameters,
    unfreeze,
)
from .layers import (
    SUPPORTED,
    LoRAConfig,
    add_lora,
    effective_weight,
    has_lora,
    lora_delta,
    remove_lora,
    set_lora,
    weight_norm_of,
)
from .lora_errors import LoraConfigError, LoraKeyError, LoraModuleError
from .merge import (
    apply_adapters,
    bake,
    is_merged,
    merge,
    merge_module,
    remove_adapters,
    unmerge,
    unmerge_module,
)
from .targets import PRESETS, select_modules, targets_string

__all__ = [
    "FORMAT", "FORMAT_VERSION", "Adapter", "AdapterError", "AdapterNeedsForce", "AdapterWarning", "BaseInfo", "check_adapter",
    "extract_adapter", "fingerprint", "load_adapter", "model_fingerprint", "save_adapter",
    "base_state_dict", "canonical_key", "freeze", "inject", "lora_modules", "lora_state_dict",
    "parameter_counts", "trainable_parameters", "unfreeze",
    "SUPPORTED", "LoRAConfig", "add_lora", "effective_weight", "has_lora", "lora_delta",
    "remove_lora", "set_lora", "weight_norm_of",
    "apply_adapters", "bake", "is_merged", "merge", "merge_module", "remove_adapters",
    "unmerge", "unmerge_module",
    "PRESETS", "select_modules", "targets_string",
    "LoraConfigError", "LoraKeyError", "LoraModuleError",
]
