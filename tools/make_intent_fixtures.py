"""Writes the two tiny reference images used by the intent tests.

tests/fixtures/intent/ref_a.png: 128x128 RGB, a grey square on white.
tests/fixtures/intent/ref_b.jpg: 128x96 RGB, quality 80.
Only their sizes matter (boxes are checked against them)."""
from PIL import Image, ImageDraw

a = Image.new("RGB", (128, 128), "white")
ImageDraw.Draw(a).rectangle([10, 10, 60, 50], fill="grey")
a.save("tests/fixtures/intent/ref_a.png", optimize=True)
b = Image.new("RGB", (128, 96), "white")
ImageDraw.Draw(b).rectangle([20, 5, 90, 40], fill="black")
b.save("tests/fixtures/intent/ref_b.jpg", quality=80)
