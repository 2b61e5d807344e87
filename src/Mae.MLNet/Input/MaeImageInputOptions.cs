
namespace Mae.MLNet.Input;

/// <summary>
/// How image files become model input: the augmentation (crop scale/ratio, flip, mean/std, output size, channels —
/// owned by <see cref="MaeAugmentationOptions"/>), the number of decode workers, the prefetch depth and what to do
/// with bad files. Defaults follow the reference and PIL's limits.
/// </summary>
public sealed class MaeImageInputOptions
{
    /// <summary>PIL's <c>Image.MAX_IMAGE_PIXELS</c>: the default pixel limit of one image (≈ 9 459²).</summary>
    public const long PilMaxImagePixels = 89_478_485;

    /// <summary>Output size, RandomResizedCrop scale/ratio, flip probability, channels, mean/std. The
    /// <see cref="MaeAugmentationOptions.Resampler"/> setting does not apply here: files are always resampled with
    /// PIL's bicubic filter on the CPU, as torchvision's PIL path does.</summary>
    public MaeAugmentationOptions Augmentation { get; set; } = new();
    /// <summary>Decode workers (threads). Default: the machine's logical cores.</summary>
    public int Workers { get; set; } = Environment.ProcessorCount;
    /// <summary>Batches decoded ahead of the one the trainer is using (the bounded queue). Memory is bounded by
    /// (PrefetchBatches + 1) batches plus one decoded image per worker. Default 2.</summary>
    public int PrefetchBatches { get; set; } = 2;
    /// <summary>False (default): a bad file stops the epoch with a <see cref="MaeImageFileException"/> naming it, at
    /// the batch that reads it. True: it is replaced by the next readable image of the epoch's order (deterministically),
    /// and listed in the source's <c>SkippedFiles</c>.</summary>
    public bool SkipBadFiles { get; set; }
    /// <summary>Largest width × height accepted, checked from the header before any pixel is decoded (bounds memory).
    /// Default <see cref="PilMaxImagePixels"/>.</summary>
    public long MaxPixels { get; set; } = PilMaxImagePixels;
    /// <summary>Largest file accepted, in bytes. Default 256 MiB.</summary>
    public long MaxFileBytes { get; set; } = 256L << 20;
    /// <summary>Decode JPEGs at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the crop stays at least the output
    /// size: much faster for large photos and small outputs; the pixels then differ slightly from a full decode
    /// followed by the resize. Default true; false reproduces torchvision's PIL pipeline exactly (up to the decoder).</summary>
    public bool ScaledJpegDecode { get; set; } = true;
    /// <summary>Apply the EXIF orientation tag (a photo taken sideways comes out upright). Default true.
    /// (torchvision's <c>ImageFolder</c> ignores the tag.)</summary>
    public bool ApplyExifOrientation { get; set; } = true;

    /// <summary>A copy with another augmentation (the ML.NET estimators pass theirs).</summary>
    public MaeImageInputOptions With(MaeAugmentationOptions augmentation) => new()
    {
        Augmentation = augmentation, Workers = Workers, PrefetchBatches = PrefetchBatches, SkipBadFiles = SkipBadFiles,
        MaxPixels = MaxPixels, MaxFileBytes = MaxFileBytes, ScaledJpegDecode = ScaledJpegDecode, ApplyExifOrientation = ApplyExifOrientation,
        WorkerNice = WorkerNice, HoldNicedWorkers = HoldNicedWorkers, UrgentWorkers = UrgentWorkers,
    };

    /// <summary>Benchmarks only: false leaves out the urgent workers (<see cref="BatchPrefetcher"/>), as before
    /// 2026-12-05, to compare both in one run.</summary>
    internal bool UrgentWorkers { get; set; } = true;

    /// <summary>Tests only: while this event is reset the niced workers claim no image, so the urgent ones alone
    /// (those that decode while the consumer waits) must make the batches.</summary>
    internal ManualResetEventSlim? HoldNicedWorkers { get; set; }

    /// <summary>Linux nice value of the decode workers (0 = the process's priority, up to 19); null (default) chooses:
    /// <see cref="CpuStepWorkerNice"/> when the training step runs on CPU threads (the batches are for the CPU, or for a
    /// consumer that does not say), 0 when it runs on a GPU. A niced worker gives way to libtorch's OpenMP threads, whose
    /// parallel regions otherwise wait for a worker's whole time slice when cores are scarce; but it gives way to every
    /// other process too, so only as much as needed (see docs/benchmarks.md, input pipeline). While niced, as many workers
    /// again decode at the process's priority whenever the consumer waits for a batch (the step is not running then), so
    /// other processes cannot starve the input.</summary>
    public int? WorkerNice { get; set; }

    /// <summary>The workers' nice value when the step runs on CPU threads and <see cref="WorkerNice"/> is not set: 5.
    /// Measured with <c>--bench input --contend</c> (docs/benchmarks.md, "Decode workers' priority under load"; nano32,
    /// 600 photo-sized JPEGs, 2 workers, 2 cores, nice values alternating in each round): beside two busy-loop processes,
    /// end to end ran 1.35× faster at nice 5 than at the earlier fixed 10 (0: 1.70×, 2: 1.49×), as a niced worker loses
    /// the cores to every other process; without them nice 5 was 1.11× (0: 0.82×, 2: 0.85×), as some nice still keeps the
    /// step's OpenMP threads ahead of the workers. (CFS weights: nice 5 gets a third of a nice-0 thread's share, nice 10
    /// a tenth.)</summary>
    public const int CpuStepWorkerNice = 5;

    /// <summary>The nice value that applies: <see cref="WorkerNice"/>, else <see cref="CpuStepWorkerNice"/> for a step on
    /// CPU threads and 0 for one on a GPU.</summary>
    public int ResolveWorkerNice(bool stepOnCpu) => WorkerNice ?? (stepOnCpu ? CpuStepWorkerNice : 0);

    /// <summary>Checks every option; returns this instance.</summary>
    public MaeImageInputOptions Validate()
    {
        if (Augmentation is null) throw new ArgumentNullException(nameof(Augmentation), "Augmentation must be set.");
        Augmentation.Validate();
        if (Augmentation.Channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(Augmentation), Augmentation.Channels,
                $"Image files decode to 1 (grey) or 3 (RGB) channels; Augmentation.Channels is {Augmentation.Channels}.");
        if (WorkerNice is < 0 or > 19) throw new ArgumentOutOfRangeException(nameof(WorkerNice), WorkerNice, $"WorkerNice must be in [0, 19]; got {WorkerNice}.");
        if (Workers < 1) throw new ArgumentOutOfRangeException(nameof(Workers), Workers, $"Workers must be ≥ 1; got {Workers}.");
        if (PrefetchBatches < 1)
            throw new ArgumentOutOfRangeException(nameof(PrefetchBatches), PrefetchBatches, $"PrefetchBatches must be ≥ 1; got {PrefetchBatches}.");
        if (MaxPixels < 1) throw new ArgumentOutOfRangeException(nameof(MaxPixels), MaxPixels, $"MaxPixels must be ≥ 1; got {MaxPixels}.");
        if (MaxFileBytes < 1 || MaxFileBytes > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(MaxFileBytes), MaxFileBytes, $"MaxFileBytes must be in [1, {int.MaxValue}]; got {MaxFileBytes}.");
        return this;
    }

    /// <summary>The side the evaluation transform resizes the shorter image side to before the centre crop, as the
    /// reference's <c>build_transform(is_train=False)</c>: crop_pct = 224/256 for outputs ≤ 224 px, else 1;
    /// size = int(output / crop_pct).</summary>
    public static int EvalResizeSize(int outputSize)
    {
        double cropPct = outputSize <= 224 ? 224.0 / 256.0 : 1.0;
        return (int)(outputSize / cropPct);
    }

    /// <summary>torchvision's <c>CenterCrop</c> offset along a side: <c>int(round((side − size) / 2))</c>, Python's
    /// round (half to even).</summary>
    internal static long CenterCropOffset(long side, int size) => (long)Math.Round((side - size) / 2.0, MidpointRounding.ToEven);
}
