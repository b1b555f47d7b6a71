"""The aortic valve detector: Ultralytics YOLO built from its yaml (docs/detector.md)."""
