"""The training machinery both trainings share: processes and DDP (`process`), seeded epoch
batches (`batches`), parameter groups and lr schedules (`optim`), fingerprinted checkpoints
(`checkpoints`) and the resumable epoch loop with its export (`loop`)."""
