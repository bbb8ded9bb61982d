"""A torch-native stand-in for `sgl_kernel` so that real SGLang 0.5.23 runs on a CPU without it: the PyPI
wheel holds CUDA builds only and fails to import without libcuda. Put this folder first on PYTHONPATH.

Two ops are real (the CPU engine calls them: srt/mem_cache, srt/kernels/ops/kvcache/cache_move.py); the
other names are only imported at module import time on the CPU path and raise if ever called. Unknown
names raise AttributeError, so SGLang's guarded `try: from sgl_kernel import X` fallbacks still apply.
`torch.ops.sgl_kernel.convert_weight_packed` stays absent on purpose: SGLang probes it to detect AMX
(srt/utils, cpu_has_amx_support), and its absence keeps every AMX path off.
"""

import ctypes

import torch

__version__ = "0.0.0+cpu-stand-in"


def assign_req_to_token_pool_cpu(
    req_pool_indices, req_to_token, start_offset, end_offset, out_cache_loc, pool_len
):
    """req_to_token[row i, start[i]:end[i]] = the next (end[i] - start[i]) entries of out_cache_loc."""
    position = 0
    for row, start, end in zip(
        req_pool_indices.tolist(), start_offset.tolist(), end_offset.tolist(), strict=True
    ):
        count = end - start
        if count > 0:
            req_to_token[row, start:end] = out_cache_loc[position : position + count].to(req_to_token.dtype)
        position += count


def copy_all_layer_kv_cache_cpu(data_ptrs, strides, tgt_loc, src_loc):
    """For every KV buffer (its address and row stride in bytes), copy row src_loc[j] onto tgt_loc[j]."""
    for address, stride in zip(data_ptrs.tolist(), strides.tolist(), strict=True):
        for target, source in zip(tgt_loc.tolist(), src_loc.tolist(), strict=True):
            ctypes.memmove(address + target * stride, address + source * stride, stride)


def unsupported(name):
    def op(*_args, **_kwargs):
        raise NotImplementedError(
            f"{name} is not in the CPU stand-in of sgl_kernel (sglang_epd/real_sglang/pythonpath)"
        )

    op.__name__ = name
    op.default = op  # torch.ops overloads are also read as `.default`
    return op


# `from sgl_kernel import ...` at import time (speculative decoding helpers).
IMPORTED_NAMES = [
    "build_tree_kernel_efficient_cpu", "verify_tree_greedy_cpu", "assign_draft_cache_locs_contiguous_cpu",
    "assign_extend_cache_locs_cpu", "build_draft_decode_metadata_cpu", "fill_accept_out_cache_loc_cpu",
    "fill_bonus_tokens_cpu", "fused_qk_norm_rope_cpu", "rotate_input_ids_cpu",
]  # fmt: skip
# `torch.ops.sgl_kernel.X` read at module level under `if _is_cpu:` (srt/models/qwen3_5.py and others that
# the multimodal processors import).
TORCH_OPS_NAMES = [
    "fused_sigmoid_mul_cpu", "fused_qk_gemma_rmsnorm_cpu", "fused_qk_gemma_rmsnorm_with_gate_cpu",
    "fused_qkvzba_split_reshape_cat_contiguous_cpu", "fused_qkvzba_split_reshape_cat_cpu",
    "fused_gdn_gating_cpu", "fused_moe_router_cpu", "rmsnorm_cpu", "fused_dual_residual_rmsnorm_cpu",
    "l2norm_cpu", "fused_rmsnorm_gated_cpu", "fused_sigmoid_gating_delta_rule_update_cpu",
]  # fmt: skip

globals().update({name: unsupported(name) for name in IMPORTED_NAMES})
for _name in TORCH_OPS_NAMES:
    setattr(torch.ops.sgl_kernel, _name, unsupported(f"torch.ops.sgl_kernel.{_name}"))


def __getattr__(name):
    raise AttributeError(f"the CPU stand-in of sgl_kernel has no {name!r}")
