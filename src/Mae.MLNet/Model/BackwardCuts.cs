using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Cuts the autograd graph after chosen transformer blocks during one forward pass, so that backward can run region by
/// region from the loss down, and the gradients of the blocks already done can be all-reduced while earlier regions
/// still back-propagate (TorchSharp 0.107 has no per-parameter gradient hook to start a reduction from). At a cut the
/// block's output is replaced by a detached leaf that requires a gradient; backward of the region after it fills the
/// leaf's gradient, which is then sent backward from the block's output into the region before. The sums autograd
/// computes are the same as in one backward pass. The blocks are split into groups; the cut follows each group's last
/// block, and for each group the recorder notes the first region in which any of its blocks ran: after that region's
/// backward (later regions are done first) the group's gradients are final.
/// </summary>
internal sealed class BackwardCuts
{
    [ThreadStatic] static BackwardCuts? recording;
    readonly Dictionary<Block, int> groupOf = new(ReferenceEqualityComparer.Instance);
    readonly HashSet<Block> cutAfter = new(ReferenceEqualityComparer.Instance);

    /// <summary>The block groups, in forward order.</summary>
    public IReadOnlyList<IReadOnlyList<Block>> Groups { get; }
    /// <summary>Per cut, in forward order: the block's output (end of region i) and the leaf that starts region i + 1.</summary>
    public List<(Tensor Output, Tensor Leaf)> Cuts { get; } = new();
    /// <summary>Per group: the first region in which one of its blocks ran in the recorded pass (−1: none ran).</summary>
    public int[] FirstRegion { get; }

    public BackwardCuts(IReadOnlyList<IReadOnlyList<Block>> groups)
    {
        Groups = groups;
        for (int g = 0; g < groups.Count; g++)
        {
            foreach (var b in groups[g]) groupOf[b] = g;
            if (g < groups.Count - 1 && groups[g].Count > 0) cutAfter.Add(groups[g][^1]);
        }
        FirstRegion = new int[groups.Count];
    }

    /// <summary>Records the cuts of the forward pass run until the result is disposed (on this thread); forgets the last pass's.</summary>
    public IDisposable Recording()
    {
        if (recording is not null) throw new InvalidOperationException("A backward-cut recording is already open on this thread.");
        Release();
        Array.Fill(FirstRegion, -1);
        recording = this;
        return new Stop();
    }

    /// <summary>Called by <see cref="Block"/> with its output: the output itself, or at a cut a leaf standing for it.</summary>
    internal static Tensor After(Block block, Tensor output)
    {
        var r = recording;
        if (r is null || !r.groupOf.TryGetValue(block, out int g)) return output;
        if (r.FirstRegion[g] < 0) r.FirstRegion[g] = r.Cuts.Count;
        if (!r.cutAfter.Contains(block) || !output.requires_grad) return output;
        var leaf = output.detach().requires_grad_(true);
        // Both outlive the forward's scopes (the models' forwards dispose what they do not return): owned here until Release.
        output.DetachFromDisposeScope();
        leaf.DetachFromDisposeScope();
        r.Cuts.Add((output, leaf));
        return leaf;
    }

    /// <summary>Disposes the recorded cuts (after their backward).</summary>
    public void Release()
    {
        foreach (var (output, leaf) in Cuts)
        {
            output.Dispose();
            leaf.Dispose();
        }
        Cuts.Clear();
    }

    /// <summary>The model's blocks (registration order, the forward order of every model here) in about
    /// <paramref name="count"/> groups of similar parameter counts.</summary>
    public static BackwardCuts? For(nn.Module model, int count)
    {
        var blocks = model.modules().OfType<Block>().ToList();
        if (blocks.Count < 2 || count < 2) return null;
        var sizes = blocks.Select(b => b.parameters().Where(p => p.requires_grad).Sum(p => p.numel())).ToList();
        double per = sizes.Sum() / (double)Math.Min(count, blocks.Count);
        var groups = new List<IReadOnlyList<Block>>();
        var current = new List<Block>();
        long filled = 0;
        for (int i = 0; i < blocks.Count; i++)
        {
            current.Add(blocks[i]);
            filled += sizes[i];
            if (filled >= per * (groups.Count + 1) && groups.Count < count - 1) { groups.Add(current); current = new(); }
        }
        if (current.Count > 0) groups.Add(current);
        return groups.Count < 2 ? null : new BackwardCuts(groups);
    }

    sealed class Stop : IDisposable
    {
        public void Dispose() => recording = null;
    }
}
