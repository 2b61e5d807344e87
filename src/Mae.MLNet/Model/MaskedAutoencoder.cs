using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Masked autoencoder with a ViT backbone (He et al., CVPR 2022, Fig. 2), numerically the reference
/// <c>MaskedAutoencoderViT</c> of facebookresearch/mae <c>models_mae.py</c>, with the same parameter names:
/// random masking of patches → encoder on the visible patches (+cls) → decoder on encoded visible tokens plus
/// mask tokens, unshuffled into place → per-patch pixel prediction → MSE on the removed patches only.
/// </summary>
public sealed class MaskedAutoencoder : nn.Module
{
    public MaeConfig Config { get; }
    /// <summary>The encoder; its modules are registered here under the official flat names.</summary>
    public MaeEncoder Encoder { get; }

    public readonly Linear decoder_embed;
    // Looked up by name. Module.to(...) makes a moved/converted copy of each registered Parameter and, when the
    // module has a public property of the same name, hands the copy to that property's setter instead of
    // re-registering it — so the setters must put it in the registry (an empty setter left the token on the CPU
    // after .to(cuda), found on a GPU).
    public Parameter mask_token { get => get_parameter("mask_token")!; private set => ConditionallyRegisterParameter("mask_token", value); }
    public Parameter decoder_pos_embed { get => get_parameter("decoder_pos_embed")!; private set => ConditionallyRegisterParameter("decoder_pos_embed", value); }
    internal readonly ModuleList<Block> decoder_blocks;
    public readonly LayerNorm decoder_norm;
    public readonly Linear decoder_pred;

    /// <summary>
    /// Compute precision of the matrix work in encoder and decoder (patch embedding, attention, MLP,
    /// decoder_embed, decoder_pred): <c>null</c> (default) = plain fp32; <see cref="ScalarType.BFloat16"/> = bf16
    /// mixed precision. The parameters stay fp32 master weights and receive fp32 gradients; LayerNorm, softmax,
    /// residual adds and the loss run in fp32; <c>pred</c>, <c>latent</c> and the loss come out fp32.
    /// </summary>
    public ScalarType? ComputeDType
    {
        get => computeDType;
        set
        {
            computeDType = MixedPrecision.Validate(value);
            Encoder.ComputeDType = computeDType;
            foreach (var block in decoder_blocks) block.ComputeDType = computeDType;
        }
    }
    ScalarType? computeDType;

    /// <summary>bf16/fp16 attention on CUDA through libtorch's fused kernel, in encoder and decoder (default true; see
    /// <see cref="MaeEncoder.FusedAttentionOnCuda"/>).</summary>
    public bool FusedAttentionOnCuda
    {
        get => Encoder.FusedAttentionOnCuda;
        set
        {
            Encoder.FusedAttentionOnCuda = value;
            foreach (var block in decoder_blocks) block.attn.FusedOnCuda = value;
        }
    }

    public MaskedAutoencoder(MaeConfig config) : base(TorchBackend.Checked(nameof(MaskedAutoencoder)))
    {
        Config = config.Validate();
        Encoder = new MaeEncoder(config, owner: this);
        decoder_embed = nn.Linear(config.EmbedDim, config.DecoderEmbedDim, hasBias: true);
        var maskToken = new Parameter(zeros(1, 1, config.DecoderEmbedDim));
        var decoderPosEmbed = new Parameter(
            tensor(PosEmbed.SinCos2D(config.DecoderEmbedDim, config.GridSize, clsToken: true))
                .reshape(1, config.NumPatches + 1, config.DecoderEmbedDim), requires_grad: false);
        decoder_blocks = new ModuleList<Block>(Enumerable.Range(0, config.DecoderDepth)
            .Select(_ => new Block(config.DecoderEmbedDim, config.DecoderNumHeads, config.DecoderMlpHiddenDim, config.LayerNormEps))
            .ToArray());
        decoder_norm = nn.LayerNorm(config.DecoderEmbedDim, config.LayerNormEps);
        decoder_pred = nn.Linear(config.DecoderEmbedDim, config.PatchDim, hasBias: true);

        // Official names and order: encoder parts flat at the top level, then the decoder.
        register_parameter("cls_token", Encoder.InitialClsToken);
        register_parameter("pos_embed", Encoder.InitialPosEmbed);
        register_module("patch_embed", Encoder.patch_embed);
        register_module("blocks", Encoder.blocks);
        register_module("norm", Encoder.norm);
        register_module("decoder_embed", decoder_embed);
        register_parameter("mask_token", maskToken);
        register_parameter("decoder_pos_embed", decoderPosEmbed);
        register_module("decoder_blocks", decoder_blocks);
        register_module("decoder_norm", decoder_norm);
        register_module("decoder_pred", decoder_pred);
        MaeInit.InitializeLikeReference(this, Encoder.patch_embed);
    }

    /// <summary>
    /// Parameters that get no weight decay besides every 1-D one: the encoder's tokens and position table
    /// (<see cref="MaeEncoder.NoWeightDecay"/>) and the decoder's (<c>mask_token</c>, <c>decoder_pos_embed</c>). The
    /// position tables are frozen, so only the two tokens matter. The official <c>main_pretrain.py</c> passes no such
    /// list and so decays both tokens; <see cref="Pretraining.MaePretrainOptions.DecayTokens"/> reproduces that.
    /// </summary>
    public IReadOnlySet<string> NoWeightDecay()
        => new HashSet<string>(Encoder.NoWeightDecay().Append("mask_token").Append("decoder_pos_embed"), StringComparer.Ordinal);

    /// <summary>Layer id for layer-wise lr decay (<see cref="MaeEncoder.LayerId"/>): the decoder gets <see cref="NumLayers"/>.</summary>
    public int LayerId(string name) => Encoder.LayerId(name);

    /// <summary>Encoder blocks + 1 (<see cref="MaeEncoder.NumLayers"/>).</summary>
    public int NumLayers => Encoder.NumLayers;

    /// <summary>[N, C, H, W] → [N, L, p²·C], each patch flattened as (row, column, channel) like the reference.</summary>
    public Tensor Patchify(Tensor images)
    {
        MaeInputs.CheckShape(images, nameof(images), "an image batch", images.shape[0], Config.InChannels, Config.ImageSize, Config.ImageSize);
        return PatchLayout.ToPatches(images, Config.InChannels, Config.GridSize, Config.PatchSize);
    }

    /// <summary>[N, L, p²·C] → [N, C, H, W], the inverse of <see cref="Patchify"/>.</summary>
    public Tensor Unpatchify(Tensor patches)
    {
        if (patches is null) throw new ArgumentNullException(nameof(patches));
        MaeInputs.CheckShape(patches, nameof(patches), "patch rows", patches.shape.Length == 3 ? patches.shape[0] : -1, Config.NumPatches, Config.PatchDim);
        return PatchLayout.ToImages(patches, Config.InChannels, Config.GridSize, Config.PatchSize);
    }

    /// <summary>
    /// Per-sample random masking by argsort of noise (ascending: small is kept). Keeps
    /// <c>len_keep = floor(L·(1 − ratio))</c> tokens. Returns the kept tokens, the binary mask (1 = removed) in the
    /// original patch order, and <c>ids_restore</c>. <paramref name="noise"/> [N, L] makes it deterministic.
    /// </summary>
    public (Tensor kept, Tensor mask, Tensor idsRestore) RandomMasking(Tensor x, double maskRatio, Tensor? noise = null)
    {
        MaeInputs.CheckMaskRatio(maskRatio, nameof(maskRatio));
        long n = x.shape[0], l = x.shape[1], d = x.shape[2];
        MaeInputs.CheckNoise(noise, n, (int)l, nameof(noise));
        long lenKeep = LenKeep(l, maskRatio);
        using var scope = NewDisposeScope();
        var u = noise is null ? rand(n, l, device: x.device) : noise.to(x.device);
        var idsShuffle = u.argsort(1);
        var idsRestore = idsShuffle.argsort(1);
        var idsKeep = idsShuffle[.., ..(int)lenKeep];
        var kept = x.gather(1, idsKeep.unsqueeze(-1).expand(n, lenKeep, d));
        var ordered = cat(new[] { zeros(n, lenKeep, dtype: x.dtype, device: x.device), ones(n, l - lenKeep, dtype: x.dtype, device: x.device) }, 1);
        var mask = ordered.gather(1, idsRestore);
        return (kept.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), idsRestore.MoveToOuterDisposeScope());
    }

    /// <summary><c>int(L · (1 − ratio))</c>, computed in double like Python.</summary>
    public static long LenKeep(long numPatches, double maskRatio) => (long)Math.Floor(numPatches * (1 - maskRatio));

    /// <summary>Embed, mask, prepend cls, encode. Returns latent [N, 1 + len_keep, D], mask [N, L], ids_restore [N, L].</summary>
    public (Tensor latent, Tensor mask, Tensor idsRestore) ForwardEncoder(Tensor images, double maskRatio, Tensor? noise = null)
    {
        MaeInputs.CheckImages(images, Config, nameof(images));
        MaeInputs.CheckMaskRatio(maskRatio, nameof(maskRatio));
        MaeInputs.CheckNoise(noise, images.shape[0], Config.NumPatches, nameof(noise));
        using var scope = NewDisposeScope();
        var x = Encoder.Embed(images);
        var (kept, mask, idsRestore) = RandomMasking(x, maskRatio, noise);
        var latent = Encoder.Transform(Encoder.PrependCls(kept));
        return (latent.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), idsRestore.MoveToOuterDisposeScope());
    }

    /// <summary>Decoder: embed, append mask tokens, unshuffle, add position embeddings, blocks, norm, predict p²·C
    /// values per patch. Returns [N, L, p²·C] (cls row removed).</summary>
    public Tensor ForwardDecoder(Tensor latent, Tensor idsRestore)
    {
        if (latent is null) throw new ArgumentNullException(nameof(latent));
        if (idsRestore is null) throw new ArgumentNullException(nameof(idsRestore));
        if (latent.dim() != 3 || latent.shape[2] != Config.EmbedDim || latent.shape[1] < 1 || latent.shape[1] > Config.NumPatches + 1)
            throw new ArgumentException(
                $"latent must be [N, 1 + len_keep, {Config.EmbedDim}] with len_keep ≤ {Config.NumPatches}; got {MaeInputs.Shape(latent)}.", nameof(latent));
        MaeInputs.CheckShape(idsRestore, nameof(idsRestore), "a permutation per sample", latent.shape[0], Config.NumPatches);
        using var scope = NewDisposeScope();
        long n = latent.shape[0], l = Config.NumPatches, d = Config.DecoderEmbedDim;
        var x = MixedPrecision.Linear(decoder_embed, latent, computeDType).to(latent.dtype);
        var maskTokens = mask_token.expand(n, l + 1 - x.shape[1], d);
        var tokens = cat(new[] { x[.., 1.., ..], maskTokens }, 1);
        tokens = tokens.gather(1, idsRestore.unsqueeze(-1).expand(n, l, d)); // unshuffle
        x = cat(new[] { x[.., ..1, ..], tokens }, 1).Plus(decoder_pos_embed);
        foreach (var block in decoder_blocks) x = block.forward(x);
        x = MixedPrecision.Linear(decoder_pred, decoder_norm.forward(x), computeDType).to(x.dtype);
        return x[.., 1.., ..].MoveToOuterDisposeScope();
    }

    /// <summary>Mean squared error per patch, averaged over the removed patches (mask = 1) only. With
    /// norm_pix_loss the target patch is standardised by its mean and unbiased variance (+1e-6).</summary>
    public Tensor ForwardLoss(Tensor images, Tensor pred, Tensor mask)
    {
        if (images is null) throw new ArgumentNullException(nameof(images));
        long n = images.shape.Length > 0 ? images.shape[0] : 0;
        MaeInputs.CheckShape(pred, nameof(pred), "per-patch predictions", n, Config.NumPatches, Config.PatchDim);
        MaeInputs.CheckShape(mask, nameof(mask), "a patch mask", n, Config.NumPatches);
        using var scope = NewDisposeScope();
        var target = Patchify(images).to(pred.dtype);
        if (Config.NormPixLoss) target = NormalizePatches(target);
        var perPatch = (pred - target).Squared().mean(new long[] { -1 });
        var loss = (perPatch * mask).sum() / mask.sum();
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Standardises each patch row: (x − mean) / sqrt(var_unbiased + 1e-6).</summary>
    public static Tensor NormalizePatches(Tensor patches)
    {
        using var scope = NewDisposeScope();
        var mean = patches.mean(new long[] { -1 }, keepdim: true);
        var variance = patches.var(-1, unbiased: true, keepdim: true);
        return ((patches - mean) / variance.Plus(1e-6).sqrt()).MoveToOuterDisposeScope();
    }

    /// <summary>The full MAE: returns (loss, pred [N, L, p²·C], mask [N, L] with 1 = removed).</summary>
    public (Tensor loss, Tensor pred, Tensor mask) Forward(Tensor images, double maskRatio = 0.75, Tensor? noise = null)
    {
        using var scope = NewDisposeScope();
        var (latent, mask, idsRestore) = ForwardEncoder(images, maskRatio, noise);
        var pred = ForwardDecoder(latent, idsRestore);
        var loss = ForwardLoss(images, pred, mask);
        return (loss.MoveToOuterDisposeScope(), pred.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }
}
