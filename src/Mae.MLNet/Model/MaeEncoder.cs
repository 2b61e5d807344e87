using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// The MAE's ViT encoder with the official parameter names (<c>patch_embed</c>, <c>cls_token</c>,
/// <c>pos_embed</c>, <c>blocks.i</c>, <c>norm</c>). Used alone as a feature extractor (all patches visible), and
/// shared by <see cref="MaskedAutoencoder"/>, which feeds it the visible patches only.
/// </summary>
public sealed class MaeEncoder : nn.Module<Tensor, Tensor>
{
    public MaeConfig Config { get; }
    internal readonly PatchEmbed patch_embed;
    internal readonly ModuleList<Block> blocks;
    public readonly LayerNorm norm;

    // Module.to(...) replaces Parameter objects in whichever module registered them, so the two token tables are
    // always looked up by name in their owner (this encoder, or the MaskedAutoencoder that registers them flat).
    // When this encoder is the owner, Module.to hands the replacement to the same-named property's setter (see
    // MaskedAutoencoder.mask_token), which must register it.
    readonly nn.Module owner;
    public Parameter cls_token { get => owner.get_parameter("cls_token")!; private set => Replace("cls_token", value); }
    /// <summary>Fixed 2-D sin-cos table, cls slot first; never trained (requires_grad = false).</summary>
    public Parameter pos_embed { get => owner.get_parameter("pos_embed")!; private set => Replace("pos_embed", value); }

    void Replace(string name, Parameter value)
    {
        if (!ReferenceEquals(owner, this))
            throw new InvalidOperationException($"The encoder's {name} is registered in its owner ({owner.GetName()}); replace it there.");
        ConditionallyRegisterParameter(name, value);
    }
    internal Parameter InitialClsToken { get; }
    internal Parameter InitialPosEmbed { get; }

    /// <summary>
    /// Compute precision of the matrix work (patch embedding, attention, MLP): <c>null</c> (default) = plain fp32;
    /// <see cref="ScalarType.BFloat16"/> = bf16 mixed precision over fp32 master weights, with LayerNorm, softmax
    /// and the residual stream in fp32 (see <see cref="MixedPrecision"/>). Outputs stay fp32 either way.
    /// </summary>
    public ScalarType? ComputeDType
    {
        get => patch_embed.ComputeDType;
        set
        {
            var dtype = MixedPrecision.Validate(value);
            patch_embed.ComputeDType = dtype;
            foreach (var block in blocks) block.ComputeDType = dtype;
        }
    }

    /// <summary>bf16/fp16 attention on CUDA through libtorch's fused kernel (flash attention; default true) rather than
    /// the explicit softmax(q·kᵀ/√d)·v used on the CPU and for fp32 (<see cref="Attention.FusedOnCuda"/>). A setting of
    /// this model, not of the process.</summary>
    public bool FusedAttentionOnCuda
    {
        get => blocks.Count == 0 || blocks[0].attn.FusedOnCuda;
        set { foreach (var block in blocks) block.attn.FusedOnCuda = value; }
    }

    public MaeEncoder(MaeConfig config) : this(config, owner: null) { }

    /// <summary>With an owner, the caller registers this encoder's parts under its own (flat, official) names.</summary>
    internal MaeEncoder(MaeConfig config, nn.Module? owner) : base(TorchBackend.Checked(nameof(MaeEncoder)))
    {
        Config = config.Validate();
        this.owner = owner ?? this;
        patch_embed = new PatchEmbed(config.PatchSize, config.InChannels, config.EmbedDim);
        InitialClsToken = new Parameter(zeros(1, 1, config.EmbedDim));
        InitialPosEmbed = new Parameter(
            tensor(PosEmbed.SinCos2D(config.EmbedDim, config.GridSize, clsToken: true))
                .reshape(1, config.NumPatches + 1, config.EmbedDim), requires_grad: false);
        blocks = new ModuleList<Block>(Enumerable.Range(0, config.Depth)
            .Select(_ => new Block(config.EmbedDim, config.NumHeads, config.MlpHiddenDim, config.LayerNormEps)).ToArray());
        norm = nn.LayerNorm(config.EmbedDim, config.LayerNormEps);
        if (owner is null)
        {
            register_parameter("cls_token", InitialClsToken);
            register_parameter("pos_embed", InitialPosEmbed);
            register_module("patch_embed", patch_embed);
            register_module("blocks", blocks);
            register_module("norm", norm);
            MaeInit.InitializeLikeReference(this, patch_embed);
        }
    }

    /// <summary>
    /// Parameters that get no weight decay besides every 1-D one (the rule <see cref="Training.MaeWeightDecay"/>
    /// applies): the tokens and position table, as timm's <c>VisionTransformer.no_weight_decay()</c>.
    /// </summary>
    public IReadOnlySet<string> NoWeightDecay() => new HashSet<string>(StringComparer.Ordinal) { "cls_token", "pos_embed" };

    /// <summary>The number of layers of layer-wise lr decay: the blocks, plus one for the embeddings (the reference's
    /// <c>num_layers = len(model.blocks) + 1</c>); parameters after the blocks get this id.</summary>
    public int NumLayers => Config.Depth + 1;

    /// <summary>
    /// The layer id of a parameter name for layer-wise lr decay (the reference's <c>util/lr_decay.py</c>
    /// <c>get_layer_id_for_vit</c>, after BEiT): <c>cls_token</c>, <c>pos_embed</c> and <c>patch_embed.*</c> → 0,
    /// <c>blocks.i.*</c> → i + 1, everything else (norms, heads, a decoder) → <see cref="NumLayers"/>. Names are the
    /// official flat ones this encoder and the models that own it share.
    /// </summary>
    public int LayerId(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name is "cls_token" or "pos_embed" || name.StartsWith("patch_embed", StringComparison.Ordinal)) return 0;
        if (name.StartsWith("blocks.", StringComparison.Ordinal)
            && int.TryParse(name.Split('.')[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int i))
            return i + 1;
        return NumLayers;
    }

    /// <summary>Patch tokens plus their position embeddings (no cls): [N, L, D], in the position embeddings' dtype
    /// (the add promotes reduced-precision patch tokens back).</summary>
    public Tensor Embed(Tensor images)
    {
        using var scope = NewDisposeScope();
        return patch_embed.forward(images).Plus(pos_embed[.., 1.., ..]).MoveToOuterDisposeScope();
    }

    /// <summary>Prepends cls_token + pos_embed[0] to a token sequence.</summary>
    public Tensor PrependCls(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var cls = cls_token.Plus(pos_embed[.., ..1, ..]).expand(tokens.shape[0], -1, -1);
        return cat(new[] { cls, tokens }, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Transformer blocks then the final LayerNorm.</summary>
    public Tensor Transform(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var x = tokens;
        foreach (var block in blocks) x = block.forward(x);
        return norm.forward(x).MoveToOuterDisposeScope();
    }

    /// <summary>All tokens, unmasked, after the final norm: [N, 1 + L, D] (cls first).</summary>
    public override Tensor forward(Tensor images)
    {
        MaeInputs.CheckImages(images, Config, nameof(images));
        using var scope = NewDisposeScope();
        return Transform(PrependCls(Embed(images))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One feature vector per image: the cls token, the mean of the patch tokens or their means per quadrant
    /// (<see cref="MaePooling"/>), after the final norm, of the last <paramref name="layers"/> blocks, concatenated
    /// earliest first: [N, <see cref="FeatureWidth"/>]. Every block's tokens go through the encoder's final <c>norm</c>,
    /// as DINO's <c>get_intermediate_layers</c> does for its multi-layer linear probe; <paramref name="layers"/> = 1 is
    /// the usual feature of the last block.
    /// </summary>
    public Tensor ExtractFeatures(Tensor images, MaePooling pooling = MaePooling.Cls, int layers = 1)
    {
        CheckPooling(pooling, nameof(pooling));
        using var scope = NewDisposeScope();
        // The quadrants' patch indices, once per call rather than once per block.
        var cells = pooling == MaePooling.Quadrants ? QuadrantPatches(Config.GridSize).Select(c => tensor(c, device: images.device)).ToArray() : null;
        var pooled = LastLayers(images, layers).Select(t => Pool(t, pooling, cells)).ToArray();   // each [N, D] or [N, 4·D]
        return (layers == 1 ? pooled[0] : cat(pooled, 1)).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Values per image of <see cref="ExtractFeatures"/>: D per block, 4 · D per block for
    /// <see cref="MaePooling.Quadrants"/>.</summary>
    public static int FeatureWidth(MaeConfig config, MaePooling pooling, int layers)
    {
        ArgumentNullException.ThrowIfNull(config);
        CheckPooling(pooling, nameof(pooling));
        if (pooling == MaePooling.Quadrants) QuadrantPatches(config.GridSize);   // a 1 × 1 grid has no quadrants: say so before anything runs
        return config.EmbedDim * layers * (pooling == MaePooling.Quadrants ? 4 : 1);
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> unless <paramref name="pooling"/> is a defined value.</summary>
    internal static void CheckPooling(MaePooling pooling, string name)
    {
        if (!Enum.IsDefined(pooling)) throw new ArgumentOutOfRangeException(name, pooling, $"Pooling must be Cls, Mean or Quadrants; got {pooling}.");
    }

    /// <summary>The patch indices (0-based, row-major over the <paramref name="grid"/> × <paramref name="grid"/>
    /// patches) of each quadrant, top-left, top-right, bottom-left, bottom-right: rows and columns [0, ⌈g/2⌉) and
    /// [⌊g/2⌋, g), the cells of PyTorch's <c>adaptive_avg_pool2d</c> to 2 × 2.</summary>
    internal static long[][] QuadrantPatches(int grid)
    {
        if (grid < 2) throw new ArgumentOutOfRangeException(nameof(grid), grid, $"Quadrant pooling needs a patch grid of at least 2 × 2; got {grid} × {grid}.");
        var halves = new[] { (0, (grid + 1) / 2), (grid / 2, grid) };
        return (from rows in halves
                from cols in halves
                select (from r in Enumerable.Range(rows.Item1, rows.Item2 - rows.Item1)
                        from c in Enumerable.Range(cols.Item1, cols.Item2 - cols.Item1)
                        select (long)(r * grid + c)).ToArray()).ToArray();
    }

    /// <summary>
    /// The patch tokens (cls left out) of the last <paramref name="layers"/> blocks, each after the final norm,
    /// concatenated along the channels earliest first: [N, L, layers · D], every patch visible. What an attentive
    /// probe reads; <paramref name="layers"/> = 1 is <c>forward(images)[:, 1:]</c>.
    /// </summary>
    public Tensor PatchTokens(Tensor images, int layers = 1)
    {
        using var scope = NewDisposeScope();
        var tokens = LastLayers(images, layers).Select(t => t[.., 1.., ..]).ToArray();   // each [N, L, D]
        return (layers == 1 ? tokens[0] : cat(tokens, 2)).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>All tokens [N, 1 + L, D] of each of the last <paramref name="layers"/> blocks after the final norm,
    /// earliest first (in the caller's dispose scope).</summary>
    List<Tensor> LastLayers(Tensor images, int layers)
    {
        MaeInputs.CheckImages(images, Config, nameof(images));
        CheckLayers(layers, Config, nameof(layers));
        var x = PrependCls(Embed(images));
        var outputs = new List<Tensor>(layers);
        for (int i = 0; i < blocks.Count; i++)
        {
            x = blocks[i].forward(x);
            if (i >= blocks.Count - layers) outputs.Add(norm.forward(x));
        }
        return outputs;
    }

    /// <summary>[N, 1 + L, D] tokens → [N, D]: token 0, or the mean of tokens 1 …; or [N, 4·D]: the mean of each
    /// quadrant's patch tokens (<paramref name="cells"/>: <see cref="QuadrantPatches"/> as tensors), concatenated.</summary>
    static Tensor Pool(Tensor tokens, MaePooling pooling, Tensor[]? cells) => pooling switch
    {
        MaePooling.Cls => tokens[.., 0, ..],
        MaePooling.Mean => tokens[.., 1.., ..].mean(new long[] { 1 }),
        _ => cat(cells!.Select(cell => tokens[.., 1.., ..].index_select(1, cell).mean(new long[] { 1 })).ToArray(), 1),
    };

    /// <summary><paramref name="layers"/> when given (checked as <see cref="CheckLayers"/> does), else the model's default,
    /// <see cref="MaeConfig.FeatureLayers"/>: what a featurizer whose user may name a block count uses.</summary>
    public static int ResolveLayers(int? layers, MaeConfig config, string name)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (layers is not int n) return config.FeatureLayers;
        CheckLayers(n, config, name);
        return n;
    }

    /// <summary>Throws unless 1 ≤ <paramref name="layers"/> ≤ the encoder's depth.</summary>
    public static void CheckLayers(int layers, MaeConfig config, string name)
    {
        if (layers < 1 || layers > config.Depth)
            throw new ArgumentOutOfRangeException(name, layers,
                $"Layers is the number of last blocks whose tokens are concatenated: expected 1 … {config.Depth} (the encoder's depth); got {layers}.");
    }
}
