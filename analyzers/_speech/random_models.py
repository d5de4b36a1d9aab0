"""Random-weight speech models in each library's real on-disk format, for tests and benchmarks.

No hub is reachable from the machines this project is tested on, so the real loaders
(``whisper.load_model``, ``faster_whisper.WhisperModel``, ``from_pretrained``) are exercised on
checkpoints built here from configs: tiny ones for the tests, real-size ones (random weights)
for the throughput benchmarks. Their output is noise; never present it as a transcript or a label.

- ``openai_whisper_checkpoint``: ``torch.save({"dims", "model_state_dict"})``, what openai-whisper
  downloads as ``NAME.pt``.
- ``hf_whisper_folder`` + ``ct2_whisper_folder``: a ``WhisperForConditionalGeneration`` folder with a
  Whisper tokenizer rebuilt from the tiktoken vocabulary openai-whisper ships (CTranslate2's
  converter reads the model's vocabulary through ``AutoTokenizer``, and faster-whisper reads
  ``tokenizer.json`` from the model folder, so a real tokenizer is needed), converted with
  ``ctranslate2.converters.TransformersConverter`` as faster-whisper's models are.
- ``wav2vec2_classifier_folder``: ``Wav2Vec2ForSequenceClassification`` + feature extractor, with
  the emotion labels of the seed model.
- ``ast_classifier_folder``: ``ASTForAudioClassification`` + feature extractor with AudioSet-like labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Real architectures (openai-whisper's ModelDimensions of the released checkpoints)
WHISPER_DIMS: dict[str, dict[str, int]] = {
    "tiny": dict(n_mels=80, n_audio_state=384, n_audio_head=6, n_audio_layer=4, n_vocab=51865,
                 n_text_state=384, n_text_head=6, n_text_layer=4),
    "base": dict(n_mels=80, n_audio_state=512, n_audio_head=8, n_audio_layer=6, n_vocab=51865,
                 n_text_state=512, n_text_head=8, n_text_layer=6),
    "small": dict(n_mels=80, n_audio_state=768, n_audio_head=12, n_audio_layer=12, n_vocab=51865,
                  n_text_state=768, n_text_head=12, n_text_layer=12),
    "large-v3": dict(n_mels=128, n_audio_state=1280, n_audio_head=20, n_audio_layer=32, n_vocab=51866,
                     n_text_state=1280, n_text_head=20, n_text_layer=32),
    # for tests: the smallest model the real loaders accept (multilingual vocabulary, 30 s context)
    "test-tiny": dict(n_mels=80, n_audio_state=64, n_audio_head=2, n_audio_layer=1, n_vocab=51865,
                      n_text_state=64, n_text_head=2, n_text_layer=1),
}
EMOTIONS = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]  # the seed model's labels


def _dims(size: str) -> dict[str, int]:
    return {**WHISPER_DIMS[size], "n_audio_ctx": 1500, "n_text_ctx": 448}


def openai_whisper_checkpoint(path: Path, size: str = "test-tiny", seed: int = 0) -> Path:
    """A random openai-whisper checkpoint of ``size`` at ``path`` (what ``whisper.load_model`` reads)."""
    import torch
    import whisper

    torch.manual_seed(seed)
    dims = whisper.ModelDimensions(**_dims(size))
    model = whisper.Whisper(dims)
    with torch.no_grad():  # Whisper() leaves the decoder's positional embedding uninitialised (torch.empty)
        model.decoder.positional_embedding.normal_(0.0, 0.01)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, path)
    return path


def whisper_tokenizer(n_vocab: int = 51865) -> Any:
    """A ``WhisperTokenizerFast`` with openai-whisper's multilingual vocabulary and special tokens,
    built offline from the tiktoken file the openai-whisper package ships."""
    import whisper
    from transformers import WhisperTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from whisper.tokenizer import get_encoding

    num_languages = n_vocab - 51765 - 1
    enc = get_encoding("multilingual", num_languages=num_languages)
    specials = sorted(enc._special_tokens, key=enc._special_tokens.get)
    vocab_file = Path(whisper.__file__).parent / "assets" / "multilingual.tiktoken"
    tok = TikTokenConverter(vocab_file=str(vocab_file), pattern=enc._pat_str,
                            extra_special_tokens=specials).converted()
    return WhisperTokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                                eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def hf_whisper_folder(folder: Path, size: str = "test-tiny", seed: int = 0) -> Path:
    """A random transformers Whisper of ``size`` saved with tokenizer, feature extractor and generation config."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration
    from whisper.tokenizer import LANGUAGES

    d = _dims(size)
    tok = whisper_tokenizer(d["n_vocab"])
    ids = tok.get_vocab()
    langs = [f"<|{code}|>" for code in list(LANGUAGES)[:d["n_vocab"] - 51765 - 1]]
    cfg = WhisperConfig(vocab_size=d["n_vocab"], num_mel_bins=d["n_mels"], d_model=d["n_audio_state"],
                        encoder_layers=d["n_audio_layer"], encoder_attention_heads=d["n_audio_head"],
                        decoder_layers=d["n_text_layer"], decoder_attention_heads=d["n_text_head"],
                        encoder_ffn_dim=4 * d["n_audio_state"], decoder_ffn_dim=4 * d["n_text_state"],
                        max_source_positions=1500, max_target_positions=448,
                        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids["<|endoftext|>"],
                        pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(cfg)
    layers, heads = d["n_text_layer"], d["n_text_head"]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id, max_length=448, begin_suppress_tokens=[220, cfg.eos_token_id],
        suppress_tokens=[], no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True,
        alignment_heads=[[layer, h] for layer in range(layers // 2, layers) for h in range(heads)],
        lang_to_id={t: ids[t] for t in langs},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]})
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=d["n_mels"]).save_pretrained(folder)
    return folder


def ct2_whisper_folder(hf_folder: Path, out: Path, quantization: str | None = None) -> Path:
    """``hf_folder`` converted for faster-whisper (model.bin, config.json, vocabulary, tokenizer.json)."""
    import ctranslate2

    ctranslate2.converters.TransformersConverter(
        str(hf_folder), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(out), quantization=quantization, force=True)
    return out


def wav2vec2_classifier_folder(folder: Path, real_size: bool = False, seed: int = 0) -> Path:
    """A random ``Wav2Vec2ForSequenceClassification`` with the seed model's eight emotion labels.

    ``real_size``: the XLSR-large architecture (24 layers, 1024 wide, ~315 M parameters) of
    ``ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition``; else a tiny one for tests.
    """
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    labels = dict(id2label=dict(enumerate(EMOTIONS)), label2id={e: i for i, e in enumerate(EMOTIONS)})
    if real_size:
        cfg = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                             num_labels=len(EMOTIONS), **labels)
    else:
        cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=2, classifier_proj_size=16, num_labels=len(EMOTIONS),
                             **labels)
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return folder


AUDIOSET_SAMPLE_LABELS = ["Speech", "Male speech, man speaking", "Music", "Musical instrument", "Piano",
                          "Silence", "Sine wave", "Vehicle", "Dog", "Explosion", "Gunshot, gunfire", "Door",
                          "Applause", "Laughter", "Rain", "White noise"]


def ast_classifier_folder(folder: Path, real_size: bool = False, seed: int = 0,
                          labels: list[str] | None = None) -> Path:
    """A random ``ASTForAudioClassification`` (Audio Spectrogram Transformer) and its feature extractor.

    ``real_size``: the base architecture of ``MIT/ast-finetuned-audioset-10-10-0.4593`` (527 labels);
    else a tiny one with a few AudioSet label names.
    """
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    names = labels or (AUDIOSET_SAMPLE_LABELS if not real_size
                       else AUDIOSET_SAMPLE_LABELS + [f"AudioSet class {i}" for i in range(527 - len(AUDIOSET_SAMPLE_LABELS))])
    kw = dict(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    if real_size:
        cfg = ASTConfig(frequency_stride=10, time_stride=10, max_length=1024, num_mel_bins=128, **kw)
    else:
        cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        frequency_stride=16, time_stride=16, max_length=1024, num_mel_bins=128, **kw)
    torch.manual_seed(seed)
    model = ASTForAudioClassification(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=128, max_length=1024).save_pretrained(folder)
    return folder
