"""SGLang's own EncoderBootstrapServer, as a --language-only server starts it, until stdin closes.

    python bootstrap_server.py HOST PORT [STATIC_ENCODER_URL ...]

sglang/srt/managers/tokenizer_manager.py (TokenizerManager.__init__, `if get_disagg().language_only`)
builds it with the serving host, --encoder-bootstrap-port and a URL list pre-filled with --encoder-urls;
the health-check settings come from the SGLANG_ENCODER_BOOTSTRAP_* variables of this process.
"""

import sys

from sglang.srt.disaggregation.encoder.receiver import EncoderBootstrapServer

host, port, static = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
server = EncoderBootstrapServer(host=host, port=port, urls=list(static))
sys.stdin.read()
server.close()
