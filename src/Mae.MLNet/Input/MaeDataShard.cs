namespace Mae.MLNet.Input;

/// <summary>
/// Which part of an epoch each rank reads in data-parallel training. The semantics are those of PyTorch's
/// <c>DistributedSampler</c> (the reference's sampler) followed by <c>drop_last</c> batching — every rank reads
/// <c>ceil(n / W)</c> positions of the epoch's order in full batches of b = B / W, the order padded by repeating its
/// head (position p reads order[p mod n]) — but the positions are dealt in blocks rather than strided: at step k,
/// rank r reads positions k·B + r·b … k·B + (r + 1)·b − 1. Step k of all ranks together thus covers k·B … (k + 1)·B − 1,
/// exactly what one process with batch B reads at step k, and rank r's batch is exactly micro-batch k·W + r of one
/// process with batch b and <c>AccumIter</c> W — so W ranks take the same steps as one process (the loss is a
/// per-image mean), and in bf16 even the same rounding as that accumulating process.
/// </summary>
internal static class MaeDataShard
{
    /// <summary>Per-rank batch of a global batch <paramref name="globalBatch"/>; throws unless W divides it.</summary>
    public static int RankBatch(int globalBatch, int worldSize, string parameter = "BatchSize")
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, $"The world size must be ≥ 1; got {worldSize}.");
        if (globalBatch % worldSize != 0 || globalBatch < worldSize)
            throw new ArgumentException(
                $"{parameter} = {globalBatch} is the global batch of one step, split evenly over the {worldSize} ranks; it must be a multiple of {worldSize} (e.g. {Math.Max(1, globalBatch / worldSize) * worldSize}).", parameter);
        return globalBatch / worldSize;
    }

    /// <summary>Full batches per epoch for every rank: <c>ceil(n / W) / (B / W)</c> (B / W divides nothing else).</summary>
    public static long StepsPerEpoch(long count, int globalBatch, int worldSize)
    {
        int b = RankBatch(globalBatch, worldSize);
        long perRank = (count + worldSize - 1) / worldSize;
        return perRank / b;
    }

    /// <summary>The global positions (into the padded epoch order; read order[p mod n]) of rank
    /// <paramref name="rank"/>'s batches from <paramref name="skipBatches"/> on, <paramref name="batch"/> per step.</summary>
    public static IEnumerable<long[]> Positions(long count, int batch, int rank, int worldSize, long skipBatches = 0)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "An epoch needs at least one image.");
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, $"The per-rank batch must be ≥ 1; got {batch}.");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must be in 0 … {worldSize - 1}; got {rank}.");
        return Iterate(count, batch, rank, worldSize, skipBatches);
    }

    static IEnumerable<long[]> Iterate(long count, int batch, int rank, int worldSize, long skipBatches)
    {
        long steps = (count + worldSize - 1) / worldSize / batch;
        for (long k = skipBatches; k < steps; k++)
        {
            var positions = new long[batch];
            for (int j = 0; j < batch; j++) positions[j] = Position(k, j, batch, rank, worldSize);
            yield return positions;
        }
    }

    /// <summary>The epoch's micro-batch number of rank <paramref name="rank"/>'s batch at its step <paramref name="step"/>:
    /// <c>step·W + rank</c> — the step at which one process with the per-rank batch reads the same images.</summary>
    public static long MicroBatch(long step, int rank, int worldSize) => step * worldSize + rank;

    /// <summary>The global position (into the padded epoch order) of row <paramref name="row"/> of rank
    /// <paramref name="rank"/>'s batch at step <paramref name="step"/>: <c>(step·W + rank)·b + row</c>.</summary>
    internal static long Position(long step, int row, int batch, int rank, int worldSize) => (step * worldSize + rank) * batch + row;
}
