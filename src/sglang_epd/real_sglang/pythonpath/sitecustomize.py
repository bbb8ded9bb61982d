"""Turns off the CUDA-only fast path of SGLang 0.5.23's Mooncake KV sender, for real SGLang on a CPU.

Python's `site` imports `sitecustomize` at start-up in every interpreter that has this folder on its
PYTHONPATH, SGLang's scheduler and detokenizer children included. The finder below waits for
`sglang.srt.disaggregation.mooncake.conn` and, once its body has run, sets
`MooncakeKVSender.supports_host_tensor_indices = False`. With it True, the prefill's
`_send_kv_chunk` (srt/disaggregation/prefill.py) copies the page indices into pinned memory and records a
`torch.cuda.Event`, and the prefill's scheduler dies on the first KV send ("Found no NVIDIA driver");
with it False it takes the plain `kv_to_page_indices` path.
"""

import importlib.abc
import importlib.machinery
import sys

PATCHED_MODULE = "sglang.srt.disaggregation.mooncake.conn"


class _PatchAfterExec(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.MooncakeKVSender.supports_host_tensor_indices = False

    def __getattr__(self, name):  # get_source and the like, for tracebacks
        return getattr(self._loader, name)


class _MooncakeConnFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchAfterExec(spec.loader)
        return spec


sys.meta_path.insert(0, _MooncakeConnFinder())
