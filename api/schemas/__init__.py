"""Request and response models: never ORM rows, never internal fields."""
