from common.scripts import ROOT, load_algo

__all__ = ["ROOT", "load_algo"]
