"""Tests of hypervldd.data: datasets, loaders, encoders, feature cache."""
