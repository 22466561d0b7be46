"""Datasets (registry + loaders) and protocols that build a :class:`Task`."""
from ocvis.data.datasets import (DATASETS, DEFAULT_DATASET, ImageDataset, OcvisWarning,
                                 dataset_names, describe_datasets, load_dataset,
                                 load_image_folder)
from ocvis.data.protocols import (E3_RATIOS, PROTOCOLS, SCENARIOS, Task, class_names,
                                  first_per_class, make_task, resolve_classes, task_label,
                                  validation_mask)

__all__ = ["DATASETS", "DEFAULT_DATASET", "ImageDataset", "OcvisWarning", "dataset_names",
           "describe_datasets", "load_dataset", "load_image_folder", "E3_RATIOS", "PROTOCOLS",
           "SCENARIOS", "Task", "class_names", "first_per_class", "make_task",
           "resolve_classes", "task_label", "validation_mask"]
