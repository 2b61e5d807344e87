using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Interop;
using Mae.MLNet.Training;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training.Distributed;

/// <summary>
/// Issue 24 item 5: the all-reduce overlapped with backward. The forward of an optimizer step's last micro-batch is cut
/// after each block group, backward runs region by region, and each finished group's gradient ranges are reduced on a
/// background thread. Held against the one backward + one all-reduce of the whole buffer: the flat gradient must be the
/// same bit for bit (fp32 and bf16, with an earlier accumulated micro-batch), and every element reduced exactly once.
/// The collective here halves what it is given (a rank's share of a mean over two equal ranks), so an element reduced
/// twice or never would differ. (2 MPI ranks against 1 process: DataParallelTest, where the overlap is on by default.)
/// </summary>
[TestClass]
public class OverlapTest
{
    /// <summary>Halves each tensor it reduces and records which range of the flat gradient it was, and on which thread.</summary>
    sealed class Halving(nint gradBase) : IMaeCollective
    {
        public readonly List<(long Offset, long Count, bool Background)> Reduced = new();
        public int Rank => 0;
        public int WorldSize => 2;
        public int LocalRank => 0;
        public string Name => "halving";
        public void AllReduceMean(Tensor tensor)
        {
            lock (Reduced) Reduced.Add(((TensorMemory.Address(tensor) - gradBase) / sizeof(float), tensor.numel(), Thread.CurrentThread.Name == "Mae gradient all-reduce"));
            using (no_grad()) tensor.mul_(0.5f);
        }
        public void Broadcast(Tensor tensor, int root = 0) { }
        public void Barrier() { }
        public void Abort(string message) { }
    }

    static MaeEngineSettings Settings(ScalarType? dtype) => new()
    {
        BatchSize = 4, AccumIter = 2, Epochs = 1, PeakLearningRate = 1e-3, MinLearningRate = 0, WarmupEpochs = 0, Beta1 = 0.9, Beta2 = 0.95,
        Epsilon = 1e-8, Seed = 1, LogEvery = 1, CheckpointEvery = 1, ComputeDType = dtype,
    };

    static (float[] Grad, Halving Collective, long Count) Run(bool overlapped, ScalarType? dtype)
    {
        var config = HostileFiles.ConfigI with { Depth = 4, DecoderDepth = 2 };
        TorchRuntime.Seed(1);
        using var model = new MaskedAutoencoder(config);
        model.ComputeDType = dtype;
        var split = MaeWeightDecay.Split(model, model.NoWeightDecay());
        var groups = new[] { new MaeParamGroup("decay", 1, 0.05, split.Decay.ToList()), new MaeParamGroup("no_decay", 1, 0, split.NoDecay.ToList()) };
        using var step = MaeTrainStep.Create(groups, Settings(dtype));
        var first = groups[0].Parameters[0].Parameter;
        var collective = new Halving(TensorMemory.Address(first.grad!));
        var plan = step.PlanOverlap(model, 4);
        Assert.IsNotNull(plan);
        Assert.AreEqual(4, plan.Cuts.Groups.Count, "6 blocks in 4 groups");
        using var reducer = new BackgroundReducer();
        var exposed = new System.Diagnostics.Stopwatch();
        for (int micro = 0; micro < 2; micro++)
        {
            using var scope = NewDisposeScope();
            using var g = new Generator((ulong)(10 + micro));
            var images = randn(new long[] { 4, 3, 16, 16 }, generator: g);
            var noise = rand(new long[] { 4, 16 }, generator: g);
            bool last = micro == 1, cut = last && overlapped;
            Tensor loss;
            using (step.CastForStep())
            using (cut ? plan.Cuts.Recording() : null) loss = model.Forward(images, 0.75, noise).loss;
            if (cut) Assert.AreEqual(3, plan.Cuts.Cuts.Count, "a cut after each group but the last");
            var half = loss.div(2);
            if (cut) step.BackwardReducing(half, plan, collective, reducer, exposed);
            else step.Backward(half);
            if (last && !overlapped) step.ReduceGradients(collective);
        }
        var grads = groups.SelectMany(x => x.Parameters).Select(p => p.Parameter.grad!.flatten()).ToList();
        using var all = cat(grads, 0);
        long count = groups.Sum(x => x.Parameters.Sum(p => p.Parameter.numel()));
        return (all.data<float>().ToArray(), collective, count);
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void OverlappedReductionGivesTheOneAllReducesGradientBitForBit(bool bf16)
    {
        ScalarType? dtype = bf16 ? ScalarType.BFloat16 : null;
        var (whole, once, count) = Run(overlapped: false, dtype);
        var (overlapped, inParts, _) = Run(overlapped: true, dtype);
        CollectionAssert.AreEqual(new[] { (0L, count, false) }, once.Reduced.ToArray(), "the reference: one all-reduce of the whole buffer");
        Assert.AreEqual(whole.Length, overlapped.Length);
        for (int i = 0; i < whole.Length; i++)
            if (BitConverter.SingleToInt32Bits(whole[i]) != BitConverter.SingleToInt32Bits(overlapped[i]))
                Assert.Fail($"element {i} of {whole.Length}: {whole[i]:R} after one all-reduce, {overlapped[i]:R} overlapped");
        Assert.IsTrue(whole.Any(x => x != 0), "gradients flowed");

        // Every element reduced exactly once; the block groups' ranges on the background thread, while backward ran.
        var covered = new int[count];
        foreach (var (o, n, _) in inParts.Reduced) for (long k = o; k < o + n; k++) covered[k]++;
        Assert.IsTrue(covered.All(c => c == 1), $"elements reduced {covered.Min()}–{covered.Max()} times");
        Assert.IsGreaterThanOrEqualTo(4, inParts.Reduced.Count(r => r.Background), "the 4 groups' weights and biases went in the background");
        Assert.IsTrue(inParts.Reduced.Any(r => !r.Background), "the rest (embeddings, tokens, heads) at the end");
    }
}
