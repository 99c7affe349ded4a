"""Tests of the diffusers text-to-image engine (a package so its helper imports are relative)."""
