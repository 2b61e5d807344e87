using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// The optimizer side of a training step: gradients, weight casts, clipping, AdamW. <see cref="Create"/> gives the
/// flat-buffer step (<see cref="MaeFlatParameters"/> + <see cref="MaeFlatAdamW"/>); with
/// <see cref="MaeEngineSettings.LegacyStep"/>, the per-parameter step the loop used before (TorchSharp's
/// <c>optim.AdamW</c>, weights cast at every layer call), kept so benchmarks can compare both in one run.
/// </summary>
internal abstract class MaeTrainStep : IDisposable
{
    public static MaeTrainStep Create(IReadOnlyList<MaeParamGroup> groups, MaeEngineSettings s)
        => s.LegacyStep ? new Legacy(groups, s) : new Flat(groups, s);

    /// <summary>Makes the layers use this step's cast weights until disposed (flat step with a compute dtype).</summary>
    public abstract IDisposable CastForStep();
    public abstract void Backward(Tensor loss);
    /// <summary>Clips (if set), steps AdamW at base lr <paramref name="lr"/>, zeroes the gradients.</summary>
    public abstract void OptimizerStep(double lr);
    public abstract void ZeroGrad();
    /// <summary>Data-parallel: replaces the accumulated gradient by its mean over all ranks (one all-reduce of the
    /// flat gradient buffer), after backward and before <see cref="OptimizerStep"/>.</summary>
    public abstract void ReduceGradients(IMaeCollective collective);
    /// <summary>Data-parallel, the micro-batch that ends an optimizer step, its forward recorded with
    /// <paramref name="plan"/>'s cuts: backward region by region with each finished group's gradients all-reduced on
    /// <paramref name="reducer"/> meanwhile (<see cref="OverlapPlan"/>); the rest is reduced at the end, timed on
    /// <paramref name="exposed"/> with the wait for the background — the all-reduce time backward did not hide.</summary>
    public abstract void BackwardReducing(Tensor loss, OverlapPlan plan, IMaeCollective collective, BackgroundReducer reducer, System.Diagnostics.Stopwatch exposed);
    /// <summary>The overlap plan for <paramref name="model"/> (null: none, e.g. too few blocks).</summary>
    public abstract OverlapPlan? PlanOverlap(nn.Module model, int groups);
    /// <summary>Data-parallel: overwrites the weights with rank 0's, so every rank starts from the same ones.</summary>
    public abstract void BroadcastWeights(IMaeCollective collective);
    public abstract MaeFlatAdamW Optimizer();
    public abstract void LoadOptimizer(MaeTrainingCheckpointReader reader);
    public abstract void Dispose();

    sealed class Flat : MaeTrainStep
    {
        readonly MaeFlatParameters flat;
        readonly MaeFlatAdamW adamW;
        readonly double? clip;

        public Flat(IReadOnlyList<MaeParamGroup> groups, MaeEngineSettings s)
        {
            flat = new MaeFlatParameters(groups, s.ComputeDType);
            adamW = new MaeFlatAdamW(flat, s.Beta1, s.Beta2, s.Epsilon);
            clip = s.ClipGradNorm;
        }

        public override IDisposable CastForStep() => flat.CastForStep();

        public override void Backward(Tensor loss)
        {
            loss.backward();
            flat.CollectShadowGrads();
        }

        public override void OptimizerStep(double lr)
        {
            if (clip is double c) adamW.ClipGradNorm(c);
            adamW.Step(lr);
            flat.ZeroGrad();
        }

        public override void ZeroGrad() => flat.ZeroGrad();
        public override void ReduceGradients(IMaeCollective collective) => collective.AllReduceMean(flat.Grad);

        public override OverlapPlan? PlanOverlap(nn.Module model, int groups) => OverlapPlan.For(model, flat, groups);

        public override void BackwardReducing(Tensor loss, OverlapPlan plan, IMaeCollective collective, BackgroundReducer reducer, System.Diagnostics.Stopwatch exposed)
        {
            var cuts = plan.Cuts;
            var done = new List<int>();
            try { BackwardInRegions(loss, plan, collective, reducer, done); }
            finally { cuts.Release(); }
            exposed.Start();
            try
            {
                reducer.WaitAll();
                var rest = plan.Rest(done);
                flat.CollectShadowGrads(rest);
                using var scope = NewDisposeScope();
                foreach (var (o, n) in rest) collective.AllReduceMean(flat.Grad.narrow(0, o, n));
            }
            finally { exposed.Stop(); }
        }

        void BackwardInRegions(Tensor loss, OverlapPlan plan, IMaeCollective collective, BackgroundReducer reducer, List<int> done)
        {
            var cuts = plan.Cuts;
            loss.backward();
            for (int region = cuts.Cuts.Count; region >= 0; region--)
            {
                if (region < cuts.Cuts.Count)
                {
                    var (output, leaf) = cuts.Cuts[region];
                    if (leaf.grad is { } g) output.backward(new List<Tensor> { g }, false, false, null);
                }
                for (int group = 0; group < plan.GroupRanges.Count; group++)
                {
                    if (cuts.FirstRegion[group] != region) continue;
                    done.Add(group);
                    flat.CollectShadowGrads(plan.GroupRanges[group]);
                    foreach (var (o, n) in plan.GroupRanges[group]) reducer.Enqueue(collective, flat.Grad, o, n);
                }
            }
        }

        public override void BroadcastWeights(IMaeCollective collective)
        {
            using var noGrad = no_grad();
            collective.Broadcast(flat.Data, 0);
        }

        public override MaeFlatAdamW Optimizer() => adamW;
        public override void LoadOptimizer(MaeTrainingCheckpointReader reader) => reader.LoadOptimizer(adamW, flat);

        public override void Dispose()
        {
            adamW.Dispose();
            flat.Dispose();
        }
    }

    sealed class Legacy : MaeTrainStep
    {
        readonly AdamW optimizer;
        readonly double[] scales;
        readonly List<Parameter> trainable;
        readonly double? clip;

        public Legacy(IReadOnlyList<MaeParamGroup> groups, MaeEngineSettings s)
        {
            var paramGroups = groups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(p => p.Parameter), lr: s.PeakLearningRate * g.LrScale,
                beta1: s.Beta1, beta2: s.Beta2, eps: s.Epsilon, weight_decay: g.WeightDecay)).ToList();
            optimizer = optim.AdamW(paramGroups, lr: s.PeakLearningRate, beta1: s.Beta1, beta2: s.Beta2, eps: s.Epsilon);
            scales = groups.Select(g => g.LrScale).ToArray();
            trainable = groups.SelectMany(g => g.Parameters.Select(p => p.Parameter)).ToList();
            clip = s.ClipGradNorm;
        }

        public override IDisposable CastForStep() => NoScope.Instance;
        public override void Backward(Tensor loss) => loss.backward();

        public override void OptimizerStep(double lr)
        {
            int g = 0;
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr * scales[g++];
            if (clip is double c) nn.utils.clip_grad_norm_(trainable, c);
            optimizer.step();
            optimizer.zero_grad();
        }

        public override void ZeroGrad()
        {
            // In a scope: TorchSharp's zero_grad leaves the wrapper that zero_() returns to the current scope.
            using (NewDisposeScope()) optimizer.zero_grad();
        }

        public override void ReduceGradients(IMaeCollective collective) => throw new NotSupportedException("The legacy step (benchmarks only) has no flat gradient to all-reduce.");
        public override void BackwardReducing(Tensor loss, OverlapPlan plan, IMaeCollective collective, BackgroundReducer reducer, System.Diagnostics.Stopwatch exposed)
            => throw new NotSupportedException("The legacy step (benchmarks only) has no flat gradient to all-reduce.");
        public override OverlapPlan? PlanOverlap(nn.Module model, int groups) => null;
        public override void BroadcastWeights(IMaeCollective collective) => throw new NotSupportedException("The legacy step (benchmarks only) is single-process.");
        public override MaeFlatAdamW Optimizer() => throw new NotSupportedException("The legacy step (benchmarks only) writes no checkpoints.");
        public override void LoadOptimizer(MaeTrainingCheckpointReader reader) => throw new NotSupportedException("The legacy step (benchmarks only) does not resume.");
        public override void Dispose() => optimizer.Dispose();

        sealed class NoScope : IDisposable
        {
            public static readonly NoScope Instance = new();
            public void Dispose() { }
        }
    }
}
