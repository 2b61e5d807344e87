using System.Collections.Concurrent;
using System.Diagnostics;
using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The gradient all-reduce overlapped with backward (DDP's buckets, by what TorchSharp 0.107 allows): the forward pass
/// of an optimizer step's last micro-batch is cut after each group of blocks (<see cref="BackwardCuts"/>), backward then
/// runs region by region from the loss down, and as soon as a group's gradients are final their ranges of the flat
/// gradient are all-reduced on a background thread while the earlier regions back-propagate; what no group holds (patch
/// embedding, tokens, heads) is reduced last. Each element is summed over the same ranks and divided by the same world
/// size as by the one all-reduce of the whole buffer, so the result is bit for bit the same. MPI is initialised
/// <c>MPI_THREAD_SERIALIZED</c>: only the background thread calls MPI while backward runs, and the training thread waits
/// for it before its next MPI call. Used with the MPI collective only: NCCL queues on the legacy default CUDA stream,
/// which serialises with the backward kernels, so it could not overlap there.
/// </summary>
internal sealed class OverlapPlan
{
    public BackwardCuts Cuts { get; }
    /// <summary>Per block group: its ranges of the flat gradient.</summary>
    public IReadOnlyList<List<(long Offset, long Count)>> GroupRanges { get; }
    readonly long total;

    OverlapPlan(BackwardCuts cuts, IReadOnlyList<List<(long, long)>> groupRanges, long total)
        => (Cuts, GroupRanges, this.total) = (cuts, groupRanges, total);

    /// <summary>The plan for <paramref name="model"/>'s blocks in about <paramref name="groups"/> groups, or null when the
    /// model has too few blocks to cut.</summary>
    public static OverlapPlan? For(nn.Module model, MaeFlatParameters flat, int groups)
    {
        var cuts = BackwardCuts.For(model, groups);
        if (cuts is null) return null;
        var ranges = cuts.Groups.Select(g => flat.RangesOf(g.SelectMany(b => b.parameters()))).ToList();
        return new OverlapPlan(cuts, ranges, flat.Count);
    }

    /// <summary>What the groups that ran do not hold: the rest of [0, total), reduced after backward.</summary>
    public List<(long Offset, long Count)> Rest(IEnumerable<int> doneGroups)
    {
        var taken = doneGroups.SelectMany(g => GroupRanges[g]).OrderBy(r => r.Offset).ToList();
        var rest = new List<(long, long)>();
        long at = 0;
        foreach (var (o, n) in taken)
        {
            if (o > at) rest.Add((at, o - at));
            at = Math.Max(at, o + n);
        }
        if (at < total) rest.Add((at, total - at));
        return rest;
    }
}

/// <summary>One background thread that runs queued all-reduces in order (the overlap's sender).</summary>
internal sealed class BackgroundReducer : IDisposable
{
    readonly BlockingCollection<Action> queue = new();
    readonly Thread thread;
    readonly object gate = new();
    int pending;
    Exception? failure;

    public BackgroundReducer()
    {
        thread = new Thread(Run) { IsBackground = true, Name = "Mae gradient all-reduce" };
        thread.Start();
    }

    void Run()
    {
        foreach (var work in queue.GetConsumingEnumerable())
        {
            try { work(); }
            catch (Exception e) { lock (gate) failure ??= e; }
            finally
            {
                lock (gate)
                {
                    pending--;
                    Monitor.PulseAll(gate);
                }
            }
        }
    }

    /// <summary>Queues the all-reduce (mean over the ranks) of <paramref name="grad"/>[offset, offset + count).</summary>
    public void Enqueue(IMaeCollective collective, Tensor grad, long offset, long count)
    {
        lock (gate) pending++;
        queue.Add(() =>
        {
            using var scope = NewDisposeScope();
            collective.AllReduceMean(grad.narrow(0, offset, count));
        });
    }

    /// <summary>Returns when every queued all-reduce is done; rethrows the first failure.</summary>
    public void WaitAll()
    {
        lock (gate)
        {
            while (pending > 0) Monitor.Wait(gate);
            if (failure is { } e) { failure = null; throw new MaeCollectiveException($"A background gradient all-reduce failed: {e.Message}", e); }
        }
    }

    public void Dispose()
    {
        queue.CompleteAdding();
        thread.Join();
        queue.Dispose();
    }
}
