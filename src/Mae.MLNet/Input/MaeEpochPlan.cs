using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// What one epoch of an image source (<see cref="IMaeImageSource"/>, <see cref="IMaeLabeledImageSource"/>) yields, as a pure function of these values — never of thread timing, worker
/// count or what the trainer drew from libtorch's generator before: the image order is a permutation drawn from
/// (<see cref="Seed"/>, <see cref="Epoch"/>), and each image's random augmentation from (Seed, Epoch, image index).
/// Exact resume (any worker count) and data-parallel sharding follow from that.
/// </summary>
public sealed record MaeEpochPlan
{
    /// <summary>The run's seed (the trainer's <c>Seed</c> option).</summary>
    public long Seed { get; init; }
    /// <summary>Zero-based epoch number.</summary>
    public int Epoch { get; init; }
    /// <summary>Images per batch (≥ 1) that this source yields: in data-parallel training the per-rank batch, the
    /// global batch divided by <see cref="WorldSize"/>.</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Data-parallel training: this process's rank (0 … <see cref="WorldSize"/> − 1). A source reads the
    /// positions of the epoch's order that <see cref="MaeDataShard.Positions"/> gives this rank.</summary>
    public int Rank { get; init; }
    /// <summary>Data-parallel training: the number of ranks sharing each epoch (1: the whole epoch).</summary>
    public int WorldSize { get; init; } = 1;
    /// <summary>Training: shuffled order, random augmentation, an incomplete last batch dropped (the reference's
    /// <c>drop_last=True</c>). Evaluation (false): source order, the deterministic evaluation transform, the last
    /// batch kept.</summary>
    public bool Training { get; init; } = true;
    /// <summary>Batches of this epoch already consumed (a mid-epoch resume): the source starts at this batch.</summary>
    public long SkipBatches { get; init; }
    /// <summary>Where the batches go. A CUDA device lets the source return page-locked (pinned) CPU tensors so the
    /// trainer's host→device copy can be asynchronous; null or the CPU: ordinary CPU tensors.</summary>
    public Device? TargetDevice { get; init; }

    /// <summary>Checks the values; returns this instance.</summary>
    public MaeEpochPlan Validate()
    {
        if (Epoch < 0) throw new ArgumentOutOfRangeException(nameof(Epoch), Epoch, $"Epoch must be ≥ 0; got {Epoch}.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"BatchSize must be ≥ 1; got {BatchSize}.");
        if (WorldSize < 1) throw new ArgumentOutOfRangeException(nameof(WorldSize), WorldSize, $"WorldSize must be ≥ 1; got {WorldSize}.");
        if (Rank < 0 || Rank >= WorldSize) throw new ArgumentOutOfRangeException(nameof(Rank), Rank, $"Rank must be in 0 … {WorldSize - 1}; got {Rank}.");
        if (SkipBatches < 0) throw new ArgumentOutOfRangeException(nameof(SkipBatches), SkipBatches, $"SkipBatches must be ≥ 0; got {SkipBatches}.");
        return this;
    }
}
