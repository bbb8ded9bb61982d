"""Writes a tiny, randomly initialised Qwen2.5-VL model directory that real SGLang 0.5.23 loads on a CPU:
Qwen2.5-VL's architecture (transformers' Qwen2_5_VLForConditionalGeneration) at toy size (2 text layers,
hidden 128, vision depth 2, vocab 1024), a byte-level BPE tokenizer trained here on a few sentences, and
the image processor. Nothing is downloaded. Runs with the interpreter of .venv-sglang.

    python tiny_qwen.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

VOCAB = 1024
SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
# A minimal ChatML template: text parts as they are, an image part as Qwen2.5-VL's vision placeholder.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] in ('image', 'image_url') %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [
        "You are a helpful assistant.",
        "What is in this image? Describe the picture.",
        "0123456789 .,:;!?",
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - len(SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus * 50, trainer)
    while bpe.get_vocab_size() < VOCAB - len(SPECIAL):  # specials land on fixed ids at the top
        bpe.add_tokens([f"<|unused_{bpe.get_vocab_size()}|>"])
    bpe.add_special_tokens(SPECIAL)
    assert bpe.get_vocab_size() == VOCAB
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[1:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    text = tokenizer()
    ids = {token: text.convert_tokens_to_ids(token) for token in SPECIAL}
    pixels = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 64}
    images = Qwen2VLImageProcessor(patch_size=14, temporal_patch_size=2, merge_size=2, **pixels)
    processor = Qwen2_5_VLProcessor(
        image_processor=images,
        tokenizer=text,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    images.save_pretrained(out)  # preprocessor_config.json, which SGLang's processor loader reads
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": VOCAB, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "torch_dtype": "bfloat16",
        },
        vision_config={
            "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2, "out_hidden_size": 128,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
            "fullatt_block_indexes": [1], "in_chans": 3, "hidden_act": "silu",
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )  # fmt: skip
    Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16).save_pretrained(
        out, safe_serialization=True
    )
    # SGLang reads the text fields (hidden_size, ...) at the top level of config.json too.
    path = out / "config.json"
    written = json.loads(path.read_text())
    for key, value in written.get("text_config", {}).items():
        written.setdefault(key, value)
    written.update(architectures=["Qwen2_5_VLForConditionalGeneration"], model_type="qwen2_5_vl")
    path.write_text(json.dumps(written, indent=2))
    generation = {"eos_token_id": ids["<|im_end|>"], "bos_token_id": ids["<|endoftext|>"], "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation))
    print(json.dumps({"model": str(out), "special_ids": ids}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
