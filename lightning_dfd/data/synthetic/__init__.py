"""Synthetic twins: miniature copies of the datasets in their exact layouts, with procedural faces.

Entry point: ``lightning_dfd.data.synthetic.cli.synth`` (``python -m lightning_dfd synth``). A twin is a
pipeline check, not forensic data (every root carries a README.twin.txt saying so).
"""
