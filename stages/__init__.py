"""The stage entry points: `python -m stages.<stage>`, one module per stage of dvc.yaml.

Python imports this package before it runs a stage, so the CPU kernel settings of
`base.cpu_kernels` are in place before torch loads (see mcis_core/common/kernels.py).
"""

from mcis_core.common.kernels import cpu_kernels_setting, pin_cpu_kernels

pin_cpu_kernels(cpu_kernels_setting())
