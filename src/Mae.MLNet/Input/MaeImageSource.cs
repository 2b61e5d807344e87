using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// Images in memory, held as one float32 CPU tensor [N, C, H, W], with the checks pre-training needs (no images,
/// mixed sizes, non-finite pixels) raised as .NET exceptions naming the offending image. Batches follow the
/// <see cref="MaeEpochPlan"/>: the training order is a permutation drawn from (seed, epoch) alone, so a run repeats,
/// resumes inside an epoch and shards over data-parallel ranks exactly.
/// </summary>
public sealed class MaeImageSource : IMaeImageSource, IDisposable
{
    readonly Tensor _images;

    /// <summary>Takes a copy of <paramref name="images"/> [N, C, H, W] (any floating dtype / device).</summary>
    MaeImageSource(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.IsInvalid) throw new ArgumentException("images: the tensor has been disposed.", nameof(images));
        if (images.dim() != 4)
            throw new ArgumentException(
                $"images must be a 4-D batch [N, C, H, W]; got a {images.dim()}-D tensor of shape [{string.Join(", ", images.shape)}].", nameof(images));
        if (images.shape[0] == 0) throw new ArgumentException("images is empty (N = 0): pre-training needs at least one image.", nameof(images));
        if (!images.is_floating_point()) throw new ArgumentException($"images must hold floating-point pixels; got dtype {images.dtype}.", nameof(images));
        var shape = new MaeImageShape(checked((int)images.shape[1]), checked((int)images.shape[2]), checked((int)images.shape[3]));
        shape.Validate(nameof(images));
        using (var finite = images.isfinite())
        using (var all = finite.all())
            if (!all.item<bool>()) throw new ArgumentException("images contains NaN or infinite values; expected finite pixels.", nameof(images));
        using var f = images.detach().to(float32, CPU);
        _images = f.contiguous().clone();
        _images.DetachFromDisposeScope();
        Shape = shape;
        Count = images.shape[0];
    }

    /// <summary>From a batch tensor [N, C, H, W] (copied).</summary>
    public static MaeImageSource FromTensor(Tensor images) => new(images);

    /// <summary>From single images [C, H, W], all of one shape.</summary>
    public static MaeImageSource FromTensors(IEnumerable<Tensor> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var list = images.ToList();
        if (list.Count == 0) throw new ArgumentException("images is empty: pre-training needs at least one image.", nameof(images));
        long[]? first = null;
        for (int i = 0; i < list.Count; i++)
        {
            var t = list[i] ?? throw new ArgumentException($"images[{i}] is null.", nameof(images));
            if (t.dim() != 3)
                throw new ArgumentException($"images[{i}] must be one image [C, H, W]; got shape [{string.Join(", ", t.shape)}].", nameof(images));
            first ??= t.shape;
            if (!t.shape.SequenceEqual(first))
                throw new ArgumentException(
                    $"Mixed image sizes: images[{i}] is [{string.Join(", ", t.shape)}] but images[0] is [{string.Join(", ", first)}]; resize all images to one size first.", nameof(images));
        }
        using var scope = NewDisposeScope();
        var stacked = stack(list, 0);
        return new MaeImageSource(stacked);
    }

    /// <summary>From CHW float arrays (e.g. ML.NET ExtractPixels output), each of <paramref name="shape"/>.Length values.</summary>
    public static MaeImageSource FromArrays(IEnumerable<float[]> images, MaeImageShape shape)
    {
        ArgumentNullException.ThrowIfNull(images);
        shape.Validate(nameof(shape));
        var list = images as IReadOnlyList<float[]> ?? images.ToList();
        if (list.Count == 0) throw new ArgumentException("images is empty: pre-training needs at least one image.", nameof(images));
        long len = shape.Length;
        var flat = new float[checked(len * list.Count)];
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            CheckArray(a, i, shape, nameof(images), throwInvalidData: false);
            Array.Copy(a, 0, flat, i * len, len);
        }
        using var t = tensor(flat, new long[] { list.Count, shape.Channels, shape.Height, shape.Width });
        return new MaeImageSource(t);
    }

    public static MaeImageSource FromArrays(IEnumerable<float[]> images, int channels, int height, int width)
        => FromArrays(images, new MaeImageShape(channels, height, width));

    public long Count { get; }
    public MaeImageShape Shape { get; }

    /// <summary>Data-parallel training reads this source: a plan with <see cref="MaeEpochPlan.WorldSize"/> &gt; 1
    /// yields this rank's share of the epoch's order.</summary>
    public bool ReadsShards => true;

    public IEnumerable<Tensor> Batches(MaeEpochPlan plan) => Indices(Count, plan).Select(GetBatch);

    /// <summary>The images at <paramref name="indices"/> as one float32 CPU tensor [indices.Length, C, H, W].</summary>
    internal Tensor GetBatch(long[] indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        foreach (var i in indices)
            if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"Image index must be in [0, {Count}); got {i}.");
        using var idx = tensor(indices, dtype: int64);
        return _images.index_select(0, idx);
    }

    public void Dispose() => _images.Dispose();

    /// <summary>
    /// The image indices of each batch of <paramref name="plan"/> over <paramref name="count"/> images in memory — the
    /// one owner of the in-memory order. Training: the permutation of (seed, epoch), read at this rank's positions
    /// (<see cref="MaeDataShard"/>; one rank: k·B … (k + 1)·B − 1), full batches only. Evaluation: 0 … n − 1 in
    /// batches, the last one kept. Both from batch <see cref="MaeEpochPlan.SkipBatches"/> on.
    /// </summary>
    internal static IEnumerable<long[]> Indices(long count, MaeEpochPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        plan.Validate();
        if (plan.WorldSize > 1 && !plan.Training)
            throw new ArgumentException(
                $"An evaluation plan reads the whole source in order (the last batch kept); it cannot be sharded over {plan.WorldSize} ranks. Use WorldSize = 1 for evaluation.", nameof(plan));
        return plan.Training ? Shuffled(count, plan) : InOrder(count, plan);

        static IEnumerable<long[]> Shuffled(long count, MaeEpochPlan plan)
        {
            var order = MaePlanRandom.Permutation(count, plan.Seed, plan.Epoch);
            foreach (var positions in MaeDataShard.Positions(count, plan.BatchSize, plan.Rank, plan.WorldSize, plan.SkipBatches))
                yield return positions.Select(p => order[p % count]).ToArray();
        }

        static IEnumerable<long[]> InOrder(long count, MaeEpochPlan plan)
        {
            for (long start = plan.SkipBatches * plan.BatchSize; start < count; start += plan.BatchSize)
            {
                long n = Math.Min(plan.BatchSize, count - start);
                var batch = new long[n];
                for (long i = 0; i < n; i++) batch[i] = start + i;
                yield return batch;
            }
        }
    }

    internal static void CheckArray(float[]? a, long index, MaeImageShape shape, string name, bool throwInvalidData)
    {
        string? problem = null;
        if (a is null) problem = $"image {index} is null";
        else if (a.LongLength != shape.Length)
            problem = $"Mixed image sizes: image {index} has {a.LongLength} values but {shape} needs {shape.Length}";
        else
        {
            for (long j = 0; j < a.LongLength; j++)
                if (!float.IsFinite(a[j])) { problem = $"image {index} has a non-finite value ({a[j]}) at position {j}"; break; }
        }
        if (problem is null) return;
        if (throwInvalidData) throw new InvalidDataException(problem + ".");
        throw new ArgumentException(problem + ".", name);
    }
}
