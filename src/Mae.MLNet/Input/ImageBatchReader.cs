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
    readonly ConcurrentDictionary<long, MaeImageFileSource.SkippedFile> skipped = new();
    long produced;

    /// <summary>Images decoded so far, all epochs (lets tests see that workers stop at the end of the ring).</summary>
    internal long ImagesProduced => Interlocked.Read(ref produced);

    /// <summary>The prefetcher of the epoch being read (tests wait on its <see cref="BatchPrefetcher.WaitUntilIdle"/>).</summary>
    internal BatchPrefetcher? Prefetcher { get; private set; }

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
    public IReadOnlyList<MaeImageFileSource.SkippedFile> Skipped => skipped.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList();

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
        using var prefetcher = Prefetcher = new BatchPrefetcher(this, plan, order, batches, new BadPositions());
        for (long b = plan.SkipBatches; b < batches; b++)
            yield return prefetcher.Take(b);
    }

    /// <summary>Writes the image at epoch position <paramref name="position"/> (in the padded order of a sharded plan:
    /// order[position mod n]) to <paramref name="dst"/>; returns its label. A bad image either throws or (skipping) is
    /// replaced by the next readable one in the epoch's order; the crop randomness stays keyed by the position's own
    /// image, so the result is the same whatever the timing. Skipping costs O(1) amortised per bad file: a bad file is
    /// read once per run (known ones are not read again in later epochs), and the positions found bad in this epoch
    /// are jumped over through <paramref name="bad"/>, so a run of k bad files is walked once, not once per position
    /// (which made k bad files cost k² reads).</summary>
    public long Produce(ImageSampler sampler, MaeEpochPlan plan, long[]? order, long position, BadPositions bad, float* dst)
    {
        long n = Images.Count;
        position %= n;
        long key = order is null ? position : order[position];
        bool wrapped = false;
        for (long p = position; ; )
        {
            long q = bad.Next(p);
            if (q >= n)
            {
                if (wrapped) break;
                wrapped = true;
                q = bad.Next(0);
            }
            if (wrapped && q >= position) break;  // all the way round: every image is bad
            long index = order is null ? q : order[q];
            p = q + 1;
            if (Options.SkipBadFiles && skipped.ContainsKey(index))
            {
                bad.Add(q);
                continue;
            }
            try
            {
                sampler.Produce(Images, index, plan.Training, plan.Seed, plan.Epoch, key, dst);
                Interlocked.Increment(ref produced);
                return Labels is null ? 0 : Labels[index];
            }
            catch (MaeImageFileException e) when (Options.SkipBadFiles)
            {
                skipped.TryAdd(index, new MaeImageFileSource.SkippedFile(e.FileName, e.Reason));
                bad.Add(q);
            }
        }
        throw new MaeImageFileException(Images.Name(key), $"none of the {n} images could be read (SkipBadFiles is on); see SkippedFiles.");
    }
}

/// <summary>The positions of one epoch's order found to hold a bad image, as "next candidate" links with path
/// halving (a union–find over positions): <see cref="Next"/> jumps a run of bad positions in amortised near-constant
/// time. Memory grows with the bad positions only. Shared by the decode workers of one epoch.</summary>
internal sealed class BadPositions
{
    readonly Dictionary<long, long> next = new();

    /// <summary>The first position ≥ <paramref name="p"/> not known to be bad (possibly the end of the order).</summary>
    public long Next(long p)
    {
        lock (next)
        {
            if (next.Count == 0) return p;
            long root = p;
            while (next.TryGetValue(root, out long n)) root = n;
            while (p != root && next.TryGetValue(p, out long n))   // point the walked links at the answer
            {
                next[p] = root;
                p = n;
            }
            return root;
        }
    }

    /// <summary>Records that position <paramref name="p"/> holds a bad image.</summary>
    public void Add(long p)
    {
        lock (next) next.TryAdd(p, p + 1);
    }
}
