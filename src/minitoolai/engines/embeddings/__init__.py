"""Local embedding engines: the packaged all-MiniLM-L6-v2 (``minilm``) and the vector
arithmetic every embedding engine shares (``vectors``)."""

from minitoolai.engines.embeddings.minilm import MiniLMEngine, packaged_model_dir

__all__ = ["MiniLMEngine", "packaged_model_dir"]
