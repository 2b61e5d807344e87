using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// ConvNeXt V2 (Woo et al., CVPR 2023), numerically timm's <c>ConvNeXt</c> built by <c>convnextv2_*</c>, with its
/// parameter names: <c>stem.0</c> (4×4 stride-4 conv) and <c>stem.1</c> (LayerNorm2d); <c>stages.i.downsample.0/1</c>
/// (LayerNorm2d, 2×2 stride-2 conv; stages 1–3); <c>stages.i.blocks.j</c> (<see cref="ConvNextBlock"/>); and the head:
/// global average pooling → <c>head.norm</c> → <c>head.fc</c> (absent with 0 classes: the encoder alone, as an FCMAE
/// encoder or a featurizer). A timm state dict loads into it by name, shapes as they are.
/// </summary>
public sealed class ConvNextV2 : nn.Module<Tensor, Tensor>
{
    public ConvNextV2Config Config { get; }
    /// <summary>Classes of <c>head.fc</c>; 0 = no classifier (<see cref="forward"/> gives the pooled features).</summary>
    public int NumClasses { get; }
    internal readonly Sequential stem;
    // The stem's layers typed, in a tuple so that TorchSharp's field scan does not register them a second time.
    internal readonly (Conv2d Conv, LayerNorm2d Norm) stemLayers;
    internal readonly ModuleList<ConvNextStage> stages;
    internal readonly ConvNextHead? head;

    /// <summary>A ConvNeXt V2 of <paramref name="config"/>; <paramref name="numClasses"/> 0 for the encoder alone.
    /// Initialised as timm's <c>_init_weights</c> (conv and linear weights trunc-normal std 0.02, biases 0; LayerNorm
    /// 1, 0; GRN 0, 0).</summary>
    public ConvNextV2(ConvNextV2Config config, int numClasses = 0, double dropPathRate = 0) : this(config, numClasses, dropPathRate, withHead: true) { }

    /// <summary><paramref name="withHead"/> false: no <c>head</c> at all, the official FCMAE encoder
    /// (<c>SparseConvNeXtV2</c>, whose state dict has no final norm).</summary>
    internal ConvNextV2(ConvNextV2Config config, int numClasses, double dropPathRate, bool withHead) : base(TorchBackend.Checked(nameof(ConvNextV2)))
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config.Validate();
        if (numClasses < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The class count must be ≥ 0 (0: no classifier).");
        Model.DropPath.CheckRate(dropPathRate, nameof(dropPathRate));
        NumClasses = numClasses;
        var dims = config.Dims;
        stemLayers = (nn.Conv2d(config.InChannels, dims[0], kernel_size: config.StemPatchSize, stride: config.StemPatchSize, bias: true),
            new LayerNorm2d(dims[0], config.LayerNormEps));
        stem = nn.Sequential(("0", (nn.Module<Tensor, Tensor>)stemLayers.Conv), ("1", (nn.Module<Tensor, Tensor>)stemLayers.Norm));
        stages = new ModuleList<ConvNextStage>(Enumerable.Range(0, 4)
            .Select(i => new ConvNextStage(i == 0 ? dims[0] : dims[i - 1], dims[i], config.Depths[i], i > 0, config)).ToArray());
        head = withHead ? new ConvNextHead(dims[^1], numClasses, config.LayerNormEps) : null;
        RegisterComponents();
        DropPathRate = dropPathRate;
        InitializeLikeTimm(this);
    }

    /// <summary>Stochastic depth (timm's <c>drop_path_rate</c>): block k of all blocks gets <c>rate·k/(total − 1)</c>
    /// (timm's <c>linspace(0, rate, sum(depths))</c> split by stage); acts in training mode only.</summary>
    public double DropPathRate
    {
        get => dropPathRate;
        set
        {
            Model.DropPath.CheckRate(value, nameof(DropPathRate));
            dropPathRate = value;
            int total = Config.Depths.Sum(), k = 0;
            foreach (var stage in stages)
                foreach (var block in stage.blocks)
                    block.DropPathRate = total <= 1 ? 0 : value * k++ / (total - 1);
        }
    }
    double dropPathRate;

    /// <summary>Compute precision of the convolutions and pointwise layers (<c>null</c> fp32, or bf16 over fp32 master
    /// weights); LayerNorm, GRN, residuals and outputs stay fp32 (see <see cref="MixedPrecision"/>).</summary>
    public ScalarType? ComputeDType
    {
        get => computeDType;
        set
        {
            computeDType = MixedPrecision.Validate(value);
            foreach (var stage in stages) stage.ComputeDType = computeDType;
        }
    }
    ScalarType? computeDType;

    /// <summary>The last stage's map [N, C₄, H/32, W/32] (timm's <c>forward_features</c>).</summary>
    public Tensor ForwardFeatureMap(Tensor images)
    {
        CheckImages(images, Config, nameof(images));
        using var scope = NewDisposeScope();
        var x = stem.forward(images);
        foreach (var stage in stages) x = stage.Forward(x, null);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Each stage's output map, the maps of a multi-scale featurizer (timm's <c>forward_intermediates</c>).</summary>
    public Tensor[] ForwardStages(Tensor images)
    {
        CheckImages(images, Config, nameof(images));
        using var scope = NewDisposeScope();
        var x = stem.forward(images);
        var maps = new Tensor[4];
        for (int i = 0; i < 4; i++) maps[i] = x = stages[i].Forward(x, null);
        foreach (var m in maps) m.MoveToOuterDisposeScope();
        return maps;
    }

    /// <summary>Pooled features [N, C₄]: global average pooling, then <c>head.norm</c> (timm's
    /// <c>forward_head(pre_logits=True)</c>, the official <c>forward_features</c>).</summary>
    public Tensor ForwardFeatures(Tensor images)
    {
        if (head is null) throw new InvalidOperationException("This ConvNeXt V2 is an FCMAE encoder without head; take its ForwardFeatureMap, or Fcmae.ToEncoder() for pooled features.");
        using var scope = NewDisposeScope();
        return head.Pool(ForwardFeatureMap(images)).MoveToOuterDisposeScope();
    }

    /// <summary>The pooled features of the last <paramref name="stages"/> stages (1–4) concatenated, [N, Σ dims of those
    /// stages], as a multi-scale featurizer reads them: each earlier stage's map globally averaged, then LayerNorm without
    /// affine parameters (no trained norm exists there, and a linear probe wants comparable scales); the last stage's
    /// through <c>head.norm</c> (<see cref="ForwardFeatures(Tensor)"/>, which 1 gives).</summary>
    public Tensor ForwardFeatures(Tensor images, int stages)
    {
        CheckStages(stages, nameof(stages));
        if (stages == 1) return ForwardFeatures(images);
        if (head is null) throw new InvalidOperationException("This ConvNeXt V2 is an FCMAE encoder without head; take ForwardStages, or Fcmae.ToEncoder() for pooled features.");
        using var scope = NewDisposeScope();
        var maps = ForwardStages(images);
        var parts = new List<Tensor>();
        for (int i = 4 - stages; i < 3; i++)
            parts.Add(nn.functional.layer_norm(maps[i].mean(new long[] { 2, 3 }), new long[] { Config.Dims[i] }, eps: Config.LayerNormEps));
        parts.Add(head.Pool(maps[3]));
        return cat(parts, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Width of <see cref="ForwardFeatures(Tensor, int)"/>: the channels of the last <paramref name="stages"/> stages.</summary>
    public int FeatureWidth(int stages) => Config.FeatureWidth(stages);

    /// <summary>Throws unless <paramref name="stages"/> is 1–4 (how many of the last stages a featurizer pools).</summary>
    internal static void CheckStages(int stages, string name)
    {
        if (stages is < 1 or > 4)
            throw new ArgumentOutOfRangeException(name, stages, $"A ConvNeXt V2 featurizer pools the last 1 to 4 stages; got {stages}.");
    }

    /// <summary>Logits [N, classes], or the pooled features when <see cref="NumClasses"/> is 0.</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var f = ForwardFeatures(images);
        return (head!.fc is null ? f : head.fc.forward(f)).MoveToOuterDisposeScope();
    }

    /// <summary>The FCMAE's masked encoding (dense emulation of the official sparse encoder): the stem, zeroed where
    /// <paramref name="mask"/> (1 = removed, [N, L] over the last stage's h×w cells) says, then every stage with the
    /// mask at its resolution (<see cref="ConvNextStage.Forward"/>). Returns the last map, zero at removed cells.</summary>
    internal Tensor ForwardMasked(Tensor images, Tensor mask)
    {
        using var scope = NewDisposeScope();
        long n = images.shape[0], h = images.shape[2] / Config.TotalStride, w = images.shape[3] / Config.TotalStride;
        var keep = mask.to(images.dtype).OneMinus().reshape(n, 1, h, w);
        Tensor At(int stage) => keep.repeat_interleave(1L << (3 - stage), 2).repeat_interleave(1L << (3 - stage), 3);
        var x = stem.forward(images) * At(0);
        for (int i = 0; i < 4; i++) x = stages[i].Forward(x, At(i));
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Parameters without weight decay besides the 1-D ones and biases (which a caller excludes by rank and name,
    /// as timm and the official <c>get_parameter_groups</c> do; that covers GRN's weight and bias, the official
    /// <c>gamma</c>/<c>beta</c> it skips by name): none; ConvNeXt V2 has no tokens or position tables.</summary>
    public IReadOnlySet<string> NoWeightDecay() => new HashSet<string>();

    /// <summary>Layer id for layer-wise lr decay (the official <c>get_num_layer_for_convnext_single</c>): the stem, the
    /// official <c>downsample_layers.0</c>, 1 (with the first block: the official code gives no parameter id 0); a
    /// downsampling layer before stage s, Σ depths[&lt;s] + 1 (with the stage's first block); block j of stage s,
    /// Σ depths[&lt;s] + j + 1; the head <see cref="NumLayers"/>.</summary>
    public int LayerId(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var parts = name.Split('.');
        if (parts[0] == "stem") return 1;
        if (parts[0] == "stages" && parts.Length > 2 && int.TryParse(parts[1], out int s) && s is >= 0 and < 4)
        {
            int before = Config.Depths.Take(s).Sum();
            if (parts[2] == "downsample") return before + 1;
            if (parts[2] == "blocks" && parts.Length > 3 && int.TryParse(parts[3], out int j)) return before + j + 1;
        }
        return NumLayers;
    }

    /// <summary>Σ depths + 1: the head's layer id (layer decay scales layer i by decay^(NumLayers − i)).</summary>
    public int NumLayers => Config.NumLayers;

    /// <summary>Throws unless <paramref name="images"/> is [N, C, H, W] float with the config's channels and H, W
    /// multiples of the total stride (any size, not only <see cref="ConvNextV2Config.ImageSize"/>).</summary>
    internal static void CheckImages(Tensor images, ConvNextV2Config config, string name)
    {
        ArgumentNullException.ThrowIfNull(images, name);
        if (images.dim() != 4 || images.shape[1] != config.InChannels)
            throw new ArgumentException($"Expected images [N, {config.InChannels}, H, W]; got [{string.Join(", ", images.shape)}].", name);
        if (!images.is_floating_point())
            throw new ArgumentException($"Expected floating-point images; got {images.dtype}.", name);
        if (images.shape[0] < 1 || images.shape[2] < config.TotalStride || images.shape[3] < config.TotalStride
            || images.shape[2] % config.TotalStride != 0 || images.shape[3] % config.TotalStride != 0)
            throw new ArgumentException(
                $"Expected at least one image whose height and width are positive multiples of {config.TotalStride} (the stem's {config.StemPatchSize} × three 2× downsamplings); got [{string.Join(", ", images.shape)}].", name);
    }

    /// <summary>timm's <c>_init_weights</c>: Conv2d and Linear-like weights trunc-normal(std 0.02, ±2), biases 0;
    /// LayerNorm weight 1, bias 0 and GRN 0, 0 are their constructors' values.</summary>
    internal static void InitializeLikeTimm(nn.Module root)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in root.named_modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    VitClassifier.TruncNormal(conv.weight!, std: 0.02);
                    nn.init.zeros_(conv.bias!);
                    break;
                case Pointwise pw:
                    VitClassifier.TruncNormal(pw.weight, std: 0.02);
                    nn.init.zeros_(pw.bias);
                    break;
                case Linear linear:
                    VitClassifier.TruncNormal(linear.weight, std: 0.02);
                    nn.init.zeros_(linear.bias!);
                    break;
            }
        }
    }
}

/// <summary>One stage: <c>downsample</c> (LayerNorm2d <c>0</c>, 2×2 stride-2 conv <c>1</c>; stages 1–3) then
/// <c>blocks</c>.</summary>
internal sealed class ConvNextStage : nn.Module<Tensor, Tensor>
{
    public readonly Sequential? downsample;
    public readonly ModuleList<ConvNextBlock> blocks;
    // The downsampling's layers typed, in a tuple so that TorchSharp's field scan does not register them a second time.
    internal readonly (LayerNorm2d Norm, Conv2d Conv)? down;
    public ScalarType? ComputeDType
    {
        get => computeDType;
        set { computeDType = value; foreach (var b in blocks) b.ComputeDType = value; }
    }
    ScalarType? computeDType;

    public ConvNextStage(int inChannels, int outChannels, int depth, bool downsampling, ConvNextV2Config config) : base(nameof(ConvNextStage))
    {
        if (downsampling)
        {
            var norm = new LayerNorm2d(inChannels, config.LayerNormEps);
            var conv = nn.Conv2d(inChannels, outChannels, kernel_size: 2, stride: 2, bias: true);
            downsample = nn.Sequential(("0", (nn.Module<Tensor, Tensor>)norm), ("1", conv));
            down = (norm, conv);
        }
        blocks = new ModuleList<ConvNextBlock>(Enumerable.Range(0, depth)
            .Select(_ => new ConvNextBlock(outChannels, config.MlpRatio, config.ConvMlp, config.LayerNormEps)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary><paramref name="keep"/>: FCMAE's visibility at this stage's resolution [N, 1, H, W] (see
    /// <see cref="ConvNextBlock.Forward"/>); the downsampling's conv reads only visible pixels and writes zeros elsewhere.</summary>
    public Tensor Forward(Tensor x, Tensor? keep)
    {
        using var scope = NewDisposeScope();
        if (down is var (norm, conv))
        {
            x = norm.forward(x);
            x = MixedPrecision.Conv2d(conv, keep is null ? x : x * UpTo(keep), 2, computeDType).to(float32);
            if (keep is not null) x = x * keep;
        }
        foreach (var block in blocks) x = block.Forward(x, keep);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The visibility at the resolution before this stage's 2× downsampling.</summary>
    static Tensor UpTo(Tensor keep) => keep.repeat_interleave(2, 2).repeat_interleave(2, 3);
}

/// <summary>timm's <c>NormMlpClassifierHead</c> without hidden layer: global average pooling → <c>norm</c> → <c>fc</c>.</summary>
internal sealed class ConvNextHead : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm2d norm;
    public readonly Linear? fc;

    public ConvNextHead(int channels, int numClasses, double eps) : base(nameof(ConvNextHead))
    {
        norm = new LayerNorm2d(channels, eps);
        if (numClasses > 0) fc = nn.Linear(channels, numClasses, hasBias: true);
        RegisterComponents();
    }

    /// <summary>[N, C, H, W] → pooled, normalised [N, C].</summary>
    public Tensor Pool(Tensor map)
    {
        using var scope = NewDisposeScope();
        var pooled = map.mean(new long[] { 2, 3 });
        return norm.ForwardChannelsLast(pooled).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor map)
    {
        using var scope = NewDisposeScope();
        var f = Pool(map);
        return (fc is null ? f : fc.forward(f)).MoveToOuterDisposeScope();
    }
}
