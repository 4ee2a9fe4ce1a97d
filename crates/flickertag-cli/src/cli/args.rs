//! Command-line flags (clap). Parsed here, resolved into library objects in
//! `super`; the library never sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use flickertag::data::Split;
use flickertag::prune::curves::CriterionKind;
use flickertag::stimulus::{Domain, Layout};

/// Frequency tagging (SSVEP) analysis of neural network filters.
#[derive(Debug, Parser)]
#[command(name = "flickertag", version, about, long_about = None)]
pub struct Cli {
    /// Subcommand.
    #[command(subcommand)]
    pub command: Command,
    /// No progress bars or informational output.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print machine-readable JSON results on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the frequency-tagging analysis and write a run folder.
    #[command(
        after_help = "Examples:\n  flickertag analyze --model resnet32\n  flickertag analyze --model resnet32 --n-images 100 --seed 1 --out runs/r32\n  flickertag analyze --model model.onnx --image-file cat.png --freqs 6,7.5 --taps conv,relu"
    )]
    Analyze(Box<AnalyzeArgs>),
    /// Top-1 accuracy on CIFAR-10.
    #[command(
        after_help = "Examples:\n  flickertag eval --model resnet32\n  flickertag eval --model resnet32.onnx --data ../shared/data --limit 1000"
    )]
    Eval(EvalArgs),
    /// List a model's tap points with their shapes.
    #[command(after_help = "Examples:\n  flickertag taps resnet32\n  flickertag taps model.onnx --json")]
    Taps(TapsArgs),
    /// Write a model (e.g. a PyTorch checkpoint) as an ONNX file.
    #[command(
        after_help = "Examples:\n  flickertag export --model resnet32 -o resnet32.onnx\n  flickertag export --model ckpt.pth -o model.onnx"
    )]
    Export(ExportArgs),
    /// Print the catalogue of tagged, harmonic and intermodulation lines.
    #[command(
        after_help = "Examples:\n  flickertag lines\n  flickertag lines --freqs 6,7.5,9 --layout grid:1x3 --max-order 4"
    )]
    Lines(LinesArgs),
    /// Write the stimulus frames of an image (PNG sequence or animated GIF).
    #[command(
        after_help = "Examples:\n  flickertag stimulus --image 3 --gif -o stim\n  flickertag stimulus --image-file cat.png --freqs 6,7.5 -o stim"
    )]
    Stimulus(StimulusArgs),
    /// Measure inference throughput (frames/s) with all per-channel ReLU means recorded.
    #[command(after_help = "Examples:\n  flickertag bench --model resnet32 --batch 80 --threads 2")]
    Bench(BenchArgs),
    /// List the execution providers (devices) of the ONNX Runtime library in use.
    #[command(after_help = "Examples:\n  flickertag providers\n  flickertag providers --json")]
    Providers,
    /// Download CIFAR-10 into the user cache (SHA-256 verified).
    #[command(after_help = "Examples:\n  flickertag fetch-data\n  flickertag fetch-data --dest ~/data/flickertag")]
    FetchData(FetchArgs),
    /// Run the paper's experiment end to end (ResNet-32, CIFAR-10) into a run folder.
    #[command(after_help = "Examples:\n  flickertag demo\n  flickertag demo --out runs/demo")]
    Demo(DemoArgs),
    /// Do tagged filters matter? Accuracy while pruning by frequency-tagging scores,
    /// weight L1, BatchNorm |γ|, activation magnitude and random.
    #[command(
        after_help = "Examples:\n  flickertag prune-eval --model resnet32\n  flickertag prune-eval --model resnet32 --n-images 1000 --layers '#1,#4,#31' --out runs/prune"
    )]
    PruneEval(Box<PruneArgs>),
    /// What does a high score predict? Every filter of the chosen layers ablated alone
    /// (the ground truth), and every criterion's rank correlation with it.
    #[command(
        after_help = "Examples:\n  flickertag importance-truth --model resnet32 --layers '#2,#12,#22' --out runs/truth\n  flickertag importance-truth --model resnet20 --n-images 2000 --ablation mean"
    )]
    ImportanceTruth(Box<TruthArgs>),
    /// Category selectivity by the oddball paradigm: streams of images at F with every
    /// n-th from one class; per filter and class, the response at F/n.
    #[command(
        after_help = "Examples:\n  flickertag oddball --model resnet32 --out runs/oddball\n  flickertag oddball --model resnet32 --classes cat,dog --streams 20 --validate\n  flickertag oddball --model model.onnx --image-folder images/ --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225"
    )]
    Oddball(Box<OddballArgs>),
    /// Class activation maps from channels chosen by frequency tagging, against the same
    /// layer without it: Score-CAM, Ablation-CAM and EigenCAM on a localisation set with
    /// known boxes (energy, pointing game, insertion and deletion).
    #[command(
        after_help = "Examples:\n  flickertag cam --model resnet32 --out runs/cam\n  flickertag cam --model resnet20 --n-cases 200 --methods eigencam,ablation-cam --k 8 --criterion ft_bca"
    )]
    Cam(Box<CamArgs>),
    /// Structural pruning to a MAC target (Torch-Pruning): runs in the Python package,
    /// which has torch; this build says how to get it.
    #[command(
        after_help = "Examples (the `flickertag` command of `pip install 'flickertag[pruning]'`):\n  flickertag prune --model resnet56 --criterion ft_authors --out runs/r56-ft",
        disable_help_flag = true
    )]
    Prune {
        /// The prune options (see `flickertag prune --help` of the Python package).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Merge the partial runs of `analyze --shard i/n` into one run folder.
    #[command(
        after_help = "Examples:\n  flickertag analyze --all-images --shard 0/4 --out parts/0   (and 1/4, 2/4, 3/4)\n  flickertag merge parts/0 parts/1 parts/2 parts/3 --out runs/full"
    )]
    Merge {
        /// The partial runs (each shard of one run once, any order).
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// The run folder to write.
        #[arg(long, short)]
        out: PathBuf,
        /// Replace the run already in the output folder.
        #[arg(long)]
        force: bool,
    },
    /// Draw the figures of a run folder and write its self-contained report.html.
    #[command(
        after_help = "Examples:\n  flickertag report runs/demo\n  flickertag analyze --out runs/r32 && flickertag report runs/r32"
    )]
    Report {
        /// The run folder (written by analyze or demo).
        run_dir: PathBuf,
    },
    /// Print shell completions.
    #[command(after_help = "Examples:\n  flickertag completions bash > /etc/bash_completion.d/flickertag")]
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
}

/// Where models and data come from.
#[derive(Debug, Args, Clone)]
pub struct Source {
    /// Model: a file (.onnx, .th, .pth, .safetensors) or resnet20/32/44/56.
    #[arg(long, short, default_value = "resnet32")]
    pub model: String,
    /// Data folder (with cifar10/ and models/); default $FLICKERTAG_DATA, then ~/.cache/flickertag.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Input channel means in [0, 1] pixel units, as torchvision's Normalize (1 or 3
    /// values; needed when the model does not record them).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub mean: Option<Vec<f32>>,
    /// Input channel standard deviations in [0, 1] pixel units (1 or 3 values).
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Resize images so that the shorter side has this many pixels (bilinear), e.g. 224
    /// to run CIFAR images on an ImageNet-size model.
    #[arg(long)]
    pub resize: Option<usize>,
    /// Centre-crop images to this many pixels square, after --resize.
    #[arg(long)]
    pub crop: Option<usize>,
}

/// Inference settings.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Intra-op threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Frames per inference call.
    #[arg(long, default_value_t = 80)]
    pub batch: usize,
    /// Where the network runs: cpu, or cuda (needs the GPU build of ONNX Runtime;
    /// `flickertag providers` lists what the loaded library offers).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: flickertag::engine::Device,
}

/// Stimulus settings.
#[derive(Debug, Args, Clone)]
pub struct StimArgs {
    /// Tag frequencies, Hz, one per region.
    #[arg(long, value_delimiter = ',', default_value = "6,7.5")]
    pub freqs: Vec<f64>,
    /// Phases, radians, one per region (default all 0).
    #[arg(long, value_delimiter = ',')]
    pub phases: Vec<f64>,
    /// Regions: halves, left, whole, quadrants, grid:RxC, or mask:PATH.
    #[arg(long, default_value = "halves")]
    pub layout: Layout,
    /// Frames per second.
    #[arg(long, default_value_t = 120.0)]
    pub fps: f64,
    /// Number of frames.
    #[arg(long, default_value_t = 240)]
    pub n_frames: usize,
    /// Lowest modulation factor.
    #[arg(long, default_value_t = 0.5)]
    pub lo: f32,
    /// Highest modulation factor.
    #[arg(long, default_value_t = 1.0)]
    pub hi: f32,
    /// Modulation domain: normalized or raw.
    #[arg(long, default_value = "normalized")]
    pub domain: Domain,
    /// Allow frequencies off the FFT bin grid (leakage).
    #[arg(long)]
    pub allow_leakage: bool,
    /// What the tag modulates: all (every channel alike), luminance (BT.601 luma only),
    /// red-green or blue-yellow (isoluminant opponent directions), or channel:K.
    #[arg(long, default_value = "all")]
    pub modulation: flickertag::stimulus::Modulation,
    /// Modulation depth in [0, 1]: the share of the lo..hi swing, around its middle.
    #[arg(long, default_value_t = 1.0)]
    pub depth: f32,
    /// How frames are stored before the network sees them: none (exact), uint8 (8-bit
    /// pixels), jpeg:Q (8-bit pixels through a JPEG of quality Q), as a pipeline that
    /// writes its frames as image files has them.
    #[arg(long, default_value = "none")]
    pub quantize: flickertag::stimulus::Quantize,
}

/// Which images.
#[derive(Debug, Args, Clone)]
pub struct ImageArgs {
    /// CIFAR-10 test indices (default: the first image of each class, which flickertag
    /// carries with it, so the default needs no data folder).
    #[arg(long, value_delimiter = ',')]
    pub images: Vec<usize>,
    /// Draw this many test images at random (seeded).
    #[arg(long)]
    pub n_images: Option<usize>,
    /// Seed for --n-images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// All 10,000 test images.
    #[arg(long)]
    pub all_images: bool,
    /// PNG/JPEG files instead of CIFAR-10 (`--image-file a.png b.png`, or repeated).
    #[arg(long, num_args = 1..)]
    pub image_file: Vec<PathBuf>,
}

/// `analyze` flags.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub stim: StimArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Run folder (default runs/<model>-<timestamp>).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Replace the run already in the output folder (by default it is kept and this
    /// run refused). A folder with files that are not flickertag's is never replaced.
    #[arg(long)]
    pub force: bool,
    /// SNR preset: authors, mne, fpvs.
    #[arg(long, default_value = "authors")]
    pub preset: String,
    /// Importance threshold on the per-filter score (dB for authors).
    #[arg(long, default_value_t = flickertag::analysis::DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Tap kinds to record: conv, linear, norm, act, add, concat, pool, other, all
    /// (comma-separated; bn and relu are older names of norm and act).
    #[arg(long, value_delimiter = ',', default_value = "conv,linear")]
    pub taps: Vec<String>,
    /// Explicit taps: module path (layer1.0.conv1), glob pattern ('blocks.*.mlp.fc1'),
    /// #<conv ordinal> or any float tensor name; repeatable; overrides --taps.
    #[arg(long)]
    pub tap: Vec<String>,
    /// SNR: neighbour bins per side.
    #[arg(long)]
    pub noise_n_neighbor_freqs: Option<usize>,
    /// SNR: adjacent bins skipped per side.
    #[arg(long)]
    pub noise_skip_neighbor_freqs: Option<usize>,
    /// SNR: amplitude floor for signal and noise (authors: 1e-8); a filter whose whole
    /// spectrum lies below it is reported dead. 0 measures any non-zero activation.
    #[arg(long)]
    pub floor: Option<f64>,
    /// SNR: drop the window's min and max (true/false).
    #[arg(long)]
    pub drop_extremes: Option<bool>,
    /// SNR: on power (true) or amplitude (false).
    #[arg(long)]
    pub power: Option<bool>,
    /// SNR: in dB (true) or linear (false).
    #[arg(long)]
    pub db: Option<bool>,
    /// SNR: bins excluded from noise windows.
    #[arg(long, value_delimiter = ',')]
    pub exclude_bins: Vec<usize>,
    /// SNR: leave the response grid (multiples of the tags' gcd) out of noise windows.
    #[arg(long)]
    pub exclude_grid: bool,
    /// Seeded Gaussian input noise per frame, in normalized units (a real noise floor;
    /// disables period folding). With noise, each line is also F-tested against the
    /// off-grid bins around it in every image (`noise_sweep.csv`: detection rates);
    /// several values (`0.01,0.1,1`) sweep σ, the first being the main run's.
    #[arg(long, value_delimiter = ',')]
    pub noise_sigma: Vec<f32>,
    /// Seed of the input noise.
    #[arg(long, default_value_t = 0)]
    pub noise_seed: u64,
    /// FDR level for "significant" (Hotelling T² across images, Benjamini-Hochberg).
    #[arg(long, default_value_t = 0.05)]
    pub q: f64,
    /// Frame-shuffle permutations for empirical p-values of the scores (0: none).
    #[arg(long, default_value_t = 0)]
    pub permutations: usize,
    /// Seed of the permutations and random halves.
    #[arg(long, default_value_t = 0)]
    pub stats_seed: u64,
    /// Random half splits for the stability of important sets.
    #[arg(long, default_value_t = 50)]
    pub splits: usize,
    /// Thresholds of the sweep (default: 25 over the observed scores).
    #[arg(long, value_delimiter = ',')]
    pub sweep_thresholds: Vec<f64>,
    /// Skip the across-image statistics (on by default up to 1,000 images).
    #[arg(long)]
    pub no_stats: bool,
    /// Per-neuron SNR maps of these taps (full maps recorded; e.g. conv1,layer1.0.relu1).
    #[arg(long, value_delimiter = ',')]
    pub maps: Vec<String>,
    /// Run all N frames through the network, even those identical to another (by
    /// default one period stands for all N and each distinct frame runs once).
    #[arg(long)]
    pub no_fold: bool,
    /// A recurrent model's warm-up: frames run before the recorded window (the
    /// window's last ones, periodically). Default: the window is run until the state
    /// at its end equals that at its start (a periodic steady state; at most 16 times).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Highest order of catalogued lines.
    #[arg(long, default_value_t = 20)]
    pub max_order: u32,
    /// Do not write per-image spectra (spectra.npy, coefficients.npy). By default they
    /// are written for up to 100 images (they grow with the image count).
    #[arg(long, conflicts_with = "per_image")]
    pub no_per_image: bool,
    /// Write per-image spectra whatever the image count.
    #[arg(long)]
    pub per_image: bool,
    /// Run only shard i of n (0-based) of the image list (consecutive blocks) and write a
    /// Also analyse control networks of the same architecture (`permuted`: each
    /// weight tensor's values shuffled; `random-weights`: redrawn from a Gaussian of
    /// its mean and SD), each put at the trained network's operating point (every conv
    /// calibrated on held-out frames; `control_calibration.csv`), on the same images:
    /// the first compared layer by layer (`control.csv`: Cliff's delta and
    /// Mann-Whitney p of the filters' scores), all network by network
    /// (`control_networks.csv`: percentile among the controls, Monte Carlo p).
    #[arg(long)]
    pub control: Option<flickertag::model::control::Control>,
    /// Seed of the first control network (the others take the next seeds).
    #[arg(long, default_value_t = 0)]
    pub control_seed: u64,
    /// Number of control networks (with --control).
    #[arg(long, default_value_t = flickertag::run::DEFAULT_CONTROLS)]
    pub controls: usize,
    /// Image-bootstrap 95 % intervals with this many resamples (seeded by
    /// --stats-seed) of each filter's and layer's baseline-corrected amplitudes, share
    /// of variance at the response lines, selectivity and integration
    /// (`bootstrap.csv`; keeps per-image spectra). 0: none.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Also run the analysis with the two tag frequencies exchanged between the
    /// regions, and test per filter whether its preference follows the region
    /// (`region_swap.csv`; keeps per-image spectra).
    #[arg(long)]
    pub region_swap: bool,
    /// Repeat the analysis at these modulation depths (e.g. 0.125,0.25,0.5,1) and write
    /// every filter's amplitude and SNR at each tag per depth (`contrast_response.csv`).
    #[arg(long, value_delimiter = ',')]
    pub contrast_sweep: Vec<f32>,
    /// Also compute the harmonic-sum response of FPVS practice: per layer and tag its
    /// significant harmonics, per filter the summed baseline-corrected amplitude and
    /// whether it responds (Holm) (`harmonic_sum.csv`); with per-image spectra and 4 or
    /// more images, the line selection cross-validated on image halves
    /// (`harmonic_sum_crossval.csv`); needs --noise-sigma above 0.
    #[arg(long)]
    pub harmonic_sum: bool,
    /// partial run for `flickertag merge`.
    #[arg(long)]
    pub shard: Option<flickertag::shard::Shard>,
    /// Continue from the checkpoint a killed run left beside --out (same options, model
    /// and images); without one, start from the first image.
    #[arg(long)]
    pub resume: bool,
    /// Seconds of work between checkpoints (0: none).
    #[arg(long, default_value_t = 30.0)]
    pub checkpoint_every: f64,
}

/// `eval` flags.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Split: test or train.
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `taps` flags.
#[derive(Debug, Args)]
pub struct TapsArgs {
    /// Model (file or pretrained name).
    pub model: String,
    /// Data folder for pretrained names.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: Source,
    /// Output ONNX file.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also output the per-channel means of these tap kinds (conv, linear, norm, act,
    /// add, concat, pool, other, all).
    #[arg(long, value_delimiter = ',')]
    pub taps: Vec<String>,
}

/// `lines` flags.
#[derive(Debug, Args)]
pub struct LinesArgs {
    #[command(flatten)]
    pub stim: StimArgs,
    /// Highest order.
    #[arg(long, default_value_t = 20)]
    pub max_order: u32,
}

/// `stimulus` flags.
#[derive(Debug, Args)]
pub struct StimulusArgs {
    #[command(flatten)]
    pub stim: StimArgs,
    /// CIFAR-10 test index.
    #[arg(long, default_value_t = 0)]
    pub image: usize,
    /// A PNG/JPEG file instead.
    #[arg(long)]
    pub image_file: Option<PathBuf>,
    /// Data folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder.
    #[arg(long, short, default_value = "stimulus")]
    pub out: PathBuf,
    /// Write one animated GIF instead of PNG frames.
    #[arg(long)]
    pub gif: bool,
    /// Upscale factor for viewing.
    #[arg(long, default_value_t = 8)]
    pub scale: u32,
}

/// `bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Frames to time.
    #[arg(long, default_value_t = 4000)]
    pub frames: usize,
    /// Taps recorded as per-channel means: none, or kinds (conv, bn, relu, add).
    #[arg(long, value_delimiter = ',', default_value = "relu")]
    pub taps: Vec<String>,
}

/// `fetch-data` flags.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Destination (default ~/.cache/flickertag).
    #[arg(long)]
    pub dest: Option<PathBuf>,
}

/// `demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run folder.
    #[arg(long, short, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Replace the run already in the output folder (by default it is kept and this
    /// run refused). A folder with files that are not flickertag's is never replaced.
    #[arg(long)]
    pub force: bool,
    /// Instead of the paper's experiment, demonstrate the pipeline on a randomly
    /// initialised ResNet-8 and synthetic images (no trained model involved).
    #[arg(long)]
    pub random: bool,
    /// Data folder.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `prune-eval` flags.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Measure accuracy on a seeded subset of this many test images, drawn from those
    /// not held out by --activation-images (9000: all of them by default). The AUC
    /// intervals show what the subset costs in precision.
    #[arg(long, default_value_t = 1000)]
    pub n_images: usize,
    /// Seed of the subset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fractions removed per layer, network-wide.
    #[arg(long, value_delimiter = ',', default_value = "0,0.02,0.04,0.06,0.08,0.1,0.12,0.14,0.16,0.18,0.2")]
    pub fractions: Vec<f64>,
    /// Fractions for the per-layer curves.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    pub layer_fractions: Vec<f64>,
    /// Layers with their own curves (tap names or #conv-ordinals; `none` for none).
    #[arg(long, value_delimiter = ',', default_value = "#1,#4,#8,#31")]
    pub layers: Vec<String>,
    /// Criteria: ft_authors, ft_bca, ft_t2, weight_l1, bn_gamma, activation, hrank (random is always included).
    #[arg(long, value_delimiter = ',', default_value = "ft_authors,ft_bca,ft_t2,weight_l1,bn_gamma,activation,hrank")]
    pub criteria: Vec<CriterionKind>,
    /// Random-pruning seeds (the yardstick; verdicts need at least 39).
    #[arg(long, default_value_t = 100)]
    pub random_seeds: u64,
    /// What a removed channel is replaced by: zero (the filter pruned), mean (its mean
    /// over the held-out test images where the channel is consumed, after the ReLU that
    /// reads it: the information removed, the offset kept), or both.
    #[arg(long, value_delimiter = ',', default_value = "zero,mean")]
    pub ablations: Vec<flickertag::prune::Ablation>,
    /// Where the frequency-tagging criteria measure a filter: ablation (where the
    /// ablation acts: after the ReLU that alone reads the BatchNorm output, else the
    /// BatchNorm output) or conv (before the BatchNorm).
    #[arg(long, default_value = "ablation")]
    pub score_at: flickertag::prune::experiment::ScoreAt,
    /// Image-bootstrap resamples for the 95 % intervals of the AUCs (0: none).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Test images of the frequency-tagging analysis (default: the first of each class).
    #[arg(long, value_delimiter = ',')]
    pub analysis_images: Vec<usize>,
    /// Held-out test images (the last N of the test set, never evaluated) for the
    /// activation and hrank criteria and the channel means of mean-ablation.
    #[arg(long, default_value_t = 1000)]
    pub activation_images: usize,
    /// Continue from the checkpoint a killed prune-eval left beside --out (the same
    /// settings and model): ablations it measured are not run again.
    #[arg(long)]
    pub resume: bool,
    /// Seconds of work between checkpoints (0: none).
    #[arg(long, default_value_t = 30.0)]
    pub checkpoint_every: f64,
    /// Output folder.
    #[arg(long, short, default_value = "runs/prune")]
    pub out: PathBuf,
    /// Replace the run already in the output folder (by default it is kept and this
    /// run refused). A folder with files that are not flickertag's is never replaced.
    #[arg(long)]
    pub force: bool,
}

fn parse_device(s: &str) -> Result<flickertag::engine::Device, String> {
    s.parse().map_err(|_| format!("expected {} (got {s:?})", flickertag::engine::Device::NAMES))
}

/// `importance-truth` flags.
#[derive(Debug, Args)]
pub struct TruthArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Test images the ablations are evaluated on: a seeded draw from the test images
    /// outside the statistics and analysis images.
    #[arg(long, default_value_t = 1000)]
    pub n_images: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Held-out test images (the last N of the test set) for activation, activity_sd,
    /// hrank and the channel means of mean-ablation.
    #[arg(long, default_value_t = 1000)]
    pub statistics_images: usize,
    /// Test images of the frequency-tagging analysis (default: the first of each class).
    #[arg(long, value_delimiter = ',')]
    pub analysis_images: Vec<usize>,
    /// Conv layers whose filters are ablated one at a time (tap names or #conv-ordinals;
    /// default: every conv layer).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// What an ablated channel is replaced by: zero (the filter pruned) or mean (its mean
    /// over the statistics images where the channel is consumed).
    #[arg(long, default_value = "zero")]
    pub ablation: flickertag::prune::Ablation,
    /// Image-bootstrap resamples for the 95 % intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Cross-validated ablation: split the analysis images this many times into random
    /// halves A and B; ablate, per chosen layer, the filters important on A (threshold
    /// chosen on A) and measure the loss change on B's images against same-size random
    /// sets (0: off; needs at least 4 --analysis-images).
    #[arg(long, default_value_t = 0)]
    pub crossval_splits: usize,
    /// Random sets of the same size per layer and split (--crossval-splits).
    #[arg(long, default_value_t = 20)]
    pub crossval_random: usize,
    /// Output folder.
    #[arg(long, short, default_value = "runs/importance-truth")]
    pub out: PathBuf,
    /// Replace the run already in the output folder.
    #[arg(long)]
    pub force: bool,
}

/// `flickertag cam` flags.
#[derive(Debug, Args)]
pub struct CamArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The layer whose channels make the maps (a tap name; default: the deepest tap with
    /// maps of at least 2 x 2, the usual CAM layer).
    #[arg(long, default_value = "")]
    pub layer: String,
    /// Localisation cases: CIFAR-10 test images pasted at seeded positions into canvases
    /// of other test images.
    #[arg(long, default_value_t = 1000)]
    pub n_cases: usize,
    /// Canvas side, pixels (the object is 32 x 32).
    #[arg(long, default_value_t = 64)]
    pub canvas: usize,
    /// What surrounds the object: mosaic (other test images at their own scale:
    /// competing objects) or upscaled (one other test image enlarged to the canvas).
    #[arg(long, default_value = "mosaic")]
    pub background: String,
    /// Seed of the cases, the random channel sets and the tie order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Channels in the tagging, random and bottom sets (0: a quarter of the layer's).
    #[arg(long, default_value_t = 0)]
    pub k: usize,
    /// Tagging score that ranks the channels: ft_authors, ft_bca or ft_t2.
    #[arg(long, default_value = "ft_authors")]
    pub criterion: String,
    /// Methods: score-cam, ablation-cam, eigencam (default: all three).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Insertion/deletion steps.
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// Test images of the frequency-tagging analysis (default: the first of each class).
    #[arg(long, value_delimiter = ',')]
    pub analysis_images: Vec<usize>,
    /// Case-bootstrap resamples for the 95 % intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Cases whose maps are drawn in plots/cam_grid.png.
    #[arg(long, default_value_t = 4)]
    pub keep_maps: usize,
    /// Output folder.
    #[arg(long, short, default_value = "runs/cam")]
    pub out: PathBuf,
    /// Replace the run already in the output folder.
    #[arg(long)]
    pub force: bool,
}

/// `flickertag oddball`.
#[derive(Debug, Args, Clone)]
pub struct OddballArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Base frequency F, Hz: one image per contrast cycle.
    #[arg(long, default_value_t = 6.0)]
    pub base_freq: f64,
    /// Every n-th image is from the oddball class (F/n is the oddball frequency).
    #[arg(long, default_value_t = 5)]
    pub every: usize,
    /// Frames per second.
    #[arg(long, default_value_t = 120.0)]
    pub fps: f64,
    /// Frames per stream (a multiple of every * fps / F).
    #[arg(long, default_value_t = 400)]
    pub n_frames: usize,
    /// Oddball classes, names or indices (default: all).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Streams per class (each a seeded draw of images).
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Seed of the streams, the image draws and the random sets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Oddball harmonics considered (the base harmonics skipped).
    #[arg(long, default_value_t = 10)]
    pub harmonics: usize,
    /// Noise bins read either side of a harmonic.
    #[arg(long, default_value_t = 10)]
    pub neighbours: usize,
    /// Images per class the streams draw from (CIFAR-10: from test images 0..5000).
    #[arg(long, default_value_t = 100)]
    pub pool_images: usize,
    /// A folder with one subfolder of images per class, instead of CIFAR-10.
    #[arg(long)]
    pub image_folder: Option<PathBuf>,
    /// Tap kinds (conv, linear, norm, act, add, concat, pool, other, all).
    #[arg(long, value_delimiter = ',', default_value = "conv")]
    pub taps: Vec<String>,
    /// Explicit taps (module paths, #ordinals, tensor names).
    #[arg(long, value_delimiter = ',')]
    pub tap: Vec<String>,
    /// Validate by ablation: each class's top filters by oddball z against random
    /// filter sets of the same size in the same layers (recall on test images 5000..).
    #[arg(long)]
    pub validate: bool,
    /// Share of the conv filters ablated per class.
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// Random layer-matched sets per class.
    #[arg(long, default_value_t = 100)]
    pub random_sets: usize,
    /// Test images recall is measured on (a seeded draw from 5000..10000).
    #[arg(long, default_value_t = 1000)]
    pub validation_images: usize,
    /// Run folder (default runs/oddball-<time>).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Replace the run already in the output folder.
    #[arg(long)]
    pub force: bool,
}
