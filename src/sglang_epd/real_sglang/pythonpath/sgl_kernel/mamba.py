"""Names srt/layers/attention (the GDN backend) imports from sgl_kernel.mamba on the CPU path."""

from sgl_kernel import unsupported

causal_conv1d_fn_cpu = unsupported("causal_conv1d_fn_cpu")
causal_conv1d_update_cpu = unsupported("causal_conv1d_update_cpu")
