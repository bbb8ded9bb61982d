"""Check rendered container argv with SGLang's and sglang-router's own parsers (not a copy of them).

Needs `pip install --no-deps -r requirements/parsers.txt` (sglang 0.5.23 and sglang-router 0.3.2 on a CPU;
see that file for why each package is there). Nothing is imported from them until a check runs:
importing sglang takes seconds, so the imports are lazy and cached.

What `check_sglang_argv` runs (argv = the container's args after `python3 -m sglang.launch_server`):

1. SGLang's parser: `argparse.ArgumentParser()` + `ServerArgs.add_cli_args(parser)`, `parse_args` (unknown
   flags, bad choices such as an unknown `--disaggregation-transfer-backend` / `--encoder-transfer-backend`,
   bad ints and floats are errors), then `ServerArgs.from_cli_args(namespace)`.
2. SGLang's own resolution hooks that need no GPU, no model files and no network, called through SGLang's
   `run_hook` on the parsed record set up the way `ServerArgs.resolve_once` sets it up, in the order of
   `sglang.srt.arg_groups.pipeline.run_resolution_pipeline`. They stop at the first error, as SGLang does:
   - serving_hook: handle_return_hidden_states_mode, handle_multimodal, handle_asr_validation,
     handle_deprecated_args, handle_prefill_delayer_env_compat, handle_load_balance_method
   - hicache_hook.handle_hicache_ratio_default, memory_hook.handle_offload_compatibility
   - validation_hook: validate_prefill_decode_interval, validate_response_store,
     validate_sampling_mask_max_tokens, handle_aux_hidden_state_capture
   - pd_disaggregation_hook.handle_pd_disaggregation (PD: transfer backend vs mode, `fake` on prefill,
     decode radix cache, host receive threshold, prefill_complete policy, role switch, mooncake_tcp)
   - pd_disaggregation_hook.handle_encoder_disaggregation (EPD: `--enable-prefix-mm-cache` only with
     `--encoder-only`; `--encoder-only` not with `--language-only` nor with `--disaggregation-mode`;
     `--disaggregation-ib-device` format; the model-architecture allow-list when `architecture` is given).
     Three seams, each restored afterwards: (a) the model config it reads is a stand-in carrying only
     `architecture` (no model files here); without `architecture` the hook stops where it would load the
     model, after the flag checks; (b) when /sys/class/infiniband is absent (any machine without RDMA),
     SGLang's `validate_ib_devices` cannot run, so only SGLang's `parse_ib_device_config` (format) runs;
     (c) `sglang.srt.arg_groups.model_hook`, which the hook imports for `handle_language_model_only`, needs
     the model stack (transformers, torchvision built for CUDA); when it cannot be imported a stand-in that
     does nothing unless `--language-model-only` is set is used (with it set, the rest is skipped).
   The container's env (`env`) is put into os.environ while the hooks run (several read SGLANG_* variables)
   and os.environ is restored afterwards (handle_pd_disaggregation sets MC_FORCE_TCP for mooncake_tcp).

Skipped, and why:
- handle_hardware_runtime_validation, validate_prefill_cp_platform, the platform/backends hooks
  (cpu/npu/hpu/xpu/mps/amd, symm mem, nccl pre-warm), handle_gpu_memory_settings, handle_cuda_graph_config,
  attention/MoE/mamba/kv-cache/speculative/parallelism hooks: they read the accelerator (get_platform(),
  device memory) or the model's config.json; on this CPU they would judge a CPU, not the GPU node.
- handle_model_source_paths, handle_load_format, handle_expert_pack, handle_model_specific_adjustments and
  the rest of handle_encoder_disaggregation (transfer-backend "auto" resolution): need the model files.
- handle_ssl_validation (checks files inside the pod), handle_watermark_config (reads a config file),
  handle_media_url_security (publishes a process-wide policy), handle_environment_variables and
  handle_crash_dump_env (write os.environ / directories), handle_deprecated_dp_attention (its module needs
  the model stack). `--config FILE` is not merged (the file lives in the pod).

What `check_router_argv` runs (argv after `python3 -m sglang_router.launch_router`): the parser that
`sglang_router.launch_router.parse_router_args` builds (`RouterArgs.add_cli_args(parser,
use_router_prefix=False)`, `parse_args`, `RouterArgs.from_cli_args`, which parses `--prefill URL [PORT]`),
then `RouterArgs._validate_router_args()` (its PD policy checks) and `Router.from_args(...)`, which maps
the policy and backend names onto the native enums and builds the native router object without starting
it. Skipped: the native config validation that runs inside `Router.start()`, which also binds the ports
and connects to the workers.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib
import os
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any

from . import k8s_env

REQUIREMENTS_HINT = "pip install --no-deps -r requirements/parsers.txt"

# `$(VAR)` references to pod fields resolve against this pod (its values exist only at run time).
PLACEHOLDER_POD = k8s_env.PodIdentity(group="sglang-epd", role="role", index=0, ip="10.0.0.1")

# SGLang resolution steps run by check_sglang_argv, in pipeline order: (module under
# sglang.srt.arg_groups, function). See the module docstring for what is left out and why.
SGLANG_HOOKS: tuple[tuple[str, str], ...] = (
    ("serving_hook", "handle_return_hidden_states_mode"),
    ("hicache_hook", "handle_hicache_ratio_default"),
    ("memory_hook", "handle_offload_compatibility"),
    ("validation_hook", "validate_prefill_decode_interval"),
    ("validation_hook", "validate_response_store"),
    ("validation_hook", "validate_sampling_mask_max_tokens"),
    ("validation_hook", "handle_aux_hidden_state_capture"),
    ("serving_hook", "handle_multimodal"),
    ("serving_hook", "handle_asr_validation"),
    ("serving_hook", "handle_deprecated_args"),
    ("serving_hook", "handle_prefill_delayer_env_compat"),
    ("pd_disaggregation_hook", "handle_pd_disaggregation"),
    ("serving_hook", "handle_load_balance_method"),
    ("pd_disaggregation_hook", "handle_encoder_disaggregation"),
)

_LOCK = threading.RLock()


# --- the container env its `$(VAR)` references see -----------------------------------------------------


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The env of a container of a placeholder pod (RBG's variables, plain values, fieldRefs such as
    status.podIP -> PLACEHOLDER_POD.ip); Secret/ConfigMap values stay undefined."""
    return k8s_env.container_env(container, PLACEHOLDER_POD, strict=False)


# --- lazy imports -------------------------------------------------------------------------------------------


@functools.cache
def _sglang() -> types.SimpleNamespace:
    from sglang.srt.arg_groups import pd_disaggregation_hook, validation_hook
    from sglang.srt.arg_groups.arg_utils import record_fields
    from sglang.srt.arg_groups.resolution_hooks import run_hook
    from sglang.srt.server_args import ServerArgs

    hooks = [
        getattr(importlib.import_module(f"sglang.srt.arg_groups.{module_name}"), function_name)
        for module_name, function_name in SGLANG_HOOKS
    ]
    return types.SimpleNamespace(
        ServerArgs=ServerArgs,
        record_fields=record_fields,
        run_hook=run_hook,
        hooks=hooks,
        pd_hook=pd_disaggregation_hook,
        validation_hook=validation_hook,
    )


@functools.cache
def _real_model_hook() -> types.ModuleType | None:
    """sglang.srt.arg_groups.model_hook when the model stack is installed, else None."""
    try:
        from sglang.srt.arg_groups import model_hook
    except Exception:  # ImportError, or torchvision's RuntimeError when its ops do not match torch
        return None
    return model_hook


@functools.cache
def _router() -> types.SimpleNamespace:
    from sglang_router.router import Router
    from sglang_router.router_args import RouterArgs

    return types.SimpleNamespace(RouterArgs=RouterArgs, Router=Router)


def parsers_available() -> str | None:
    """None when both real parsers import, else why not (tests skip with it)."""
    missing = []
    for name, loader in (("sglang", _sglang), ("sglang-router", _router)):
        try:
            loader()
        except Exception as exc:  # ImportError, or a broken native module / torch build
            missing.append(f"{name}: {type(exc).__name__}: {exc}")
    if not missing:
        return None
    return f"real parsers not importable ({'; '.join(missing)}); install them with `{REQUIREMENTS_HINT}`"


# --- argparse without SystemExit ----------------------------------------------------------------------------


class _ArgvError(Exception):
    pass


class _RaisingParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise _ArgvError(message)

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        raise _ArgvError(message or f"exited with status {status}")


@functools.cache
def _sglang_parser() -> _RaisingParser:
    parser = _RaisingParser(prog="sglang.launch_server")
    _sglang().ServerArgs.add_cli_args(parser)
    return parser


@functools.cache
def _router_parser() -> _RaisingParser:
    parser = _RaisingParser(prog="sglang_router.launch_router")
    _router().RouterArgs.add_cli_args(parser, use_router_prefix=False)
    return parser


# --- SGLang -------------------------------------------------------------------------------------------------


class _ModelNeeded(Exception):
    """Raised by the stand-in model config when no architecture was given: the hook stops there."""


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        os.environ.update(env or {})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)


@contextlib.contextmanager
def _encoder_hook_seams(architecture: str | None) -> Iterator[None]:
    """The three seams of handle_encoder_disaggregation described in the module docstring."""
    sg = _sglang()

    def model_config_of(_server_args: Any) -> Any:
        if architecture is None:
            raise _ModelNeeded
        hf_config = types.SimpleNamespace(architectures=[architecture], model_type="")
        return types.SimpleNamespace(hf_config=hf_config)

    real_validate = sg.validation_hook.validate_ib_devices

    def validate_ib_devices(device: str | None) -> str | None:
        if device is None or os.path.isdir("/sys/class/infiniband"):
            return real_validate(device)
        sg.validation_hook.parse_ib_device_config(device.strip())
        return device

    model_hook = _real_model_hook()
    module_name = "sglang.srt.arg_groups.model_hook"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(sg.pd_hook, "model_config_of", model_config_of))
        stack.enter_context(_patched(sg.validation_hook, "validate_ib_devices", validate_ib_devices))
        if model_hook is not None:
            stack.enter_context(_patched(model_hook, "model_config_of", model_config_of))
        else:
            stand_in = types.ModuleType(module_name)

            def handle_language_model_only(server_args: Any) -> None:
                if getattr(server_args, "language_model_only", False):
                    raise _ModelNeeded

            stand_in.handle_language_model_only = handle_language_model_only  # type: ignore[attr-defined]
            sys.modules[module_name] = stand_in
            stack.callback(sys.modules.pop, module_name, None)
        yield


def check_sglang_argv(
    argv: list[str], env: Mapping[str, str] | None = None, architecture: str | None = None
) -> list[str]:
    """Problems SGLang's own parser and pure checks find in a launch_server argv; [] when it is fine.

    env: the container's environment (after `$(VAR)` expansion); architecture: the model's
    `architectures[0]` (e.g. Qwen2_5_VLForConditionalGeneration) to run SGLang's EPD allow-list too."""
    sg = _sglang()
    with _LOCK:
        try:
            namespace = _sglang_parser().parse_args(list(argv))
        except _ArgvError as exc:
            return [f"sglang launch_server: {exc}"]
        # As sglang.srt.server_args.prepare_server_args records it before from_cli_args.
        namespace._radix_eviction_policy_explicitly_set = any(
            a == "--radix-eviction-policy" or a.startswith("--radix-eviction-policy=") for a in argv
        )
        try:
            server_args = sg.ServerArgs.from_cli_args(namespace)
        except (TypeError, ValueError) as exc:
            return [f"sglang ServerArgs.from_cli_args: {exc}"]
        # The record state ServerArgs.resolve_once / run_resolution_pipeline give the hooks.
        server_args._raw_input = {
            field.name: getattr(server_args, field.name) for field in sg.record_fields(type(server_args))
        }
        server_args._resolved_overrides = []
        server_args._input_frozen = True
        with _environment(env), _encoder_hook_seams(architecture):
            for hook in sg.hooks:
                try:
                    sg.run_hook(hook, server_args)
                except _ModelNeeded:
                    continue
                except (ValueError, AssertionError, TypeError, KeyError) as exc:
                    return [f"sglang {hook.__name__}: {exc}"]
    return []


# --- sglang-router ------------------------------------------------------------------------------------------


def check_router_argv(argv: list[str]) -> list[str]:
    """Problems sglang-router's own parser and checks find in a launch_router argv; [] when it is fine."""
    router = _router()
    with _LOCK:
        try:
            namespace = _router_parser().parse_args(list(argv))
        except _ArgvError as exc:
            return [f"sglang_router launch_router: {exc}"]
        try:
            router_args = router.RouterArgs.from_cli_args(namespace, use_router_prefix=False)
            router_args._validate_router_args()
            # from_args rewrites the fields of the object it is given.
            router.Router.from_args(copy.deepcopy(router_args))
        except (ValueError, TypeError, KeyError) as exc:
            return [f"sglang_router {type(exc).__name__}: {exc}"]
    return []
