"""Small transformers models built from a config (no download), shared by the tests that need
a real Hugging Face architecture."""

import torch

LLAMA = dict(
    vocab_size=100,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32,
)


def llama():
    """A 2-layer LlamaForCausalLM (seed 0) in eval mode."""
    import transformers

    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA)).eval()
