using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// The engine shared by the file sources: the epoch's order from the plan, the prefetcher, the bad-file policy.
/// Training plans: a permutation from (seed, epoch), random crops keyed by (seed, epoch, image index), an incomplete
/// last batch dropped. Evaluation plans: file order, the centre crop, the last batch kept. Training plans with
/// <see cref="MaeEpochPlan.WorldSize"/> &gt; 1: this rank's batches at the positions <see cref="MaeDataShard"/> gives
/// (the order padded by repeating its head), each image still cropped by its own index — so the ranks together read
/// what one process with <c>AccumIter</c> W reads.
/// </summary>
internal sealed unsafe class ImageBatchReader
{
    readonly ConcurrentDictionary<long, MaeSkippedImage> skipped = new();
    long produced;

    /// <summary>Images decoded so far, all epochs (lets tests see that workers stop at the end of the ring).</summary>
    internal long ImagesProduced => Interlocked.Read(ref produced);

    public EncodedImageList Images { get; }
    public long[]? Labels { get; }
    public MaeImageInputOptions Options { get; }
    public MaeImageShape Shape { get; }

    public ImageBatchReader(EncodedImageList images, long[]? labels, MaeImageInputOptions options)
    {
        Images = images;
        Labels = labels;
        Options = options;
        var a = options.Augmentation;
        Shape = new MaeImageShape(a.Channels, a.OutputSize, a.OutputSize);
    }

    /// <summary>Bad images met so far (with <see cref="MaeImageInputOptions.SkipBadFiles"/>), in index order.</summary>
    public IReadOnlyList<MaeSkippedImage> Skipped => skipped.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList();

    public IEnumerable<(Tensor Images, long[] Labels)> Batches(MaeEpochPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        plan.Validate();
        if (plan.WorldSize > 1 && !plan.Training)
            throw new ArgumentException(
                $"An evaluation plan reads the whole source in file order (the last batch kept); it cannot be sharded over {plan.WorldSize} ranks. Use WorldSize = 1 for evaluation.", nameof(plan));
        return Iterate(plan);
    }

    IEnumerable<(Tensor, long[])> Iterate(MaeEpochPlan plan)
    {
        long n = Images.Count;
        long batches = plan.WorldSize > 1 ? MaeDataShard.StepsPerEpoch(n, plan.BatchSize * plan.WorldSize, plan.WorldSize)
            : plan.Training ? n / plan.BatchSize : (n + plan.BatchSize - 1) / plan.BatchSize;
        if (plan.SkipBatches >= batches) yield break;
        var order = plan.Training ? MaePlanRandom.FilePermutation(n, plan.Seed, plan.Epoch) : null;
        using var prefetcher = new BatchPrefetcher(this, plan, order, batches);
        for (long b = plan.SkipBatches; b < batches; b++)
            yield return prefetcher.Take(b);
    }

    /// <summary>Writes the image at epoch position <paramref name="position"/> (in the padded order of a sharded plan:
    /// order[position mod n]) to <paramref name="dst"/>; returns its label. A bad image either throws or (skipping) is replaced by the next readable one in the epoch's order; the
    /// crop randomness stays keyed by the position's own image, so the result is the same whatever the timing.</summary>
    public long Produce(ImageSampler sampler, MaeEpochPlan plan, long[]? order, long position, float* dst)
    {
        long n = Images.Count;
        position %= n;
        long key = order is null ? position : order[position];
        for (long k = 0; k < n; k++)
        {
            long p = (position + k) % n;
            long index = order is null ? p : order[p];
            try
            {
                sampler.Produce(Images, index, plan.Training, plan.Seed, plan.Epoch, key, dst);
                Interlocked.Increment(ref produced);
                return Labels is null ? 0 : Labels[index];
            }
            catch (MaeImageFileException e) when (Options.SkipBadFiles)
            {
                skipped.TryAdd(index, new MaeSkippedImage(e.FileName, e.Reason));
            }
        }
        throw new MaeImageFileException(Images.Name(key), $"none of the {n} images could be read (SkipBadFiles is on); see SkippedFiles.");
    }
}
