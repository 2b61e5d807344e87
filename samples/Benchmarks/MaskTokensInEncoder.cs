using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// The paper's Table 5 ablation "encoder w/ [M]": the encoder processes ALL L patch positions, with a learned
/// mask token (encoder width) in place of every removed patch; the decoder then needs no mask-token insertion or
/// unshuffle. Shares every layer of the given <see cref="MaskedAutoencoder"/> (only the encoder's mask token is
/// new), so both variants are timed on the same weights. An ablation for benchmarking, not part of the product.
/// </summary>
public sealed class MaskTokensInEncoder : nn.Module
{
    readonly MaskedAutoencoder mae;
    public readonly Parameter encoder_mask_token;

    public MaskTokensInEncoder(MaskedAutoencoder mae) : base(nameof(MaskTokensInEncoder))
    {
        this.mae = mae;
        encoder_mask_token = new Parameter(zeros(1, 1, mae.Config.EmbedDim, device: mae.Encoder.cls_token.device));
        using (no_grad()) nn.init.normal_(encoder_mask_token, 0, 0.02);
        register_parameter("encoder_mask_token", encoder_mask_token);
    }

    public (Tensor loss, Tensor pred, Tensor mask) Forward(Tensor images, double maskRatio, Tensor noise)
    {
        using var scope = NewDisposeScope();
        var c = mae.Config;
        long n = images.shape[0], l = c.NumPatches, lenKeep = MaskedAutoencoder.LenKeep(l, maskRatio);
        var dtype = mae.ComputeDType;

        // The same per-sample mask as random masking (1 = removed), but nothing is dropped.
        var idsRestore = noise.argsort(1).argsort(1);
        var mask = idsRestore.ge(lenKeep).to(images.dtype); // rank ≥ len_keep ⇔ removed

        var patches = mae.Encoder.patch_embed.forward(images).to(images.dtype);
        var removed = mask.unsqueeze(-1);
        var tokens = patches * (1 - removed) + encoder_mask_token * removed + mae.Encoder.pos_embed[.., 1.., ..];
        var latent = mae.Encoder.Transform(mae.Encoder.PrependCls(tokens));

        var x = MixedPrecision.Linear(mae.decoder_embed, latent, dtype).to(latent.dtype) + mae.decoder_pos_embed;
        foreach (var block in mae.decoder_blocks) x = block.forward(x);
        x = MixedPrecision.Linear(mae.decoder_pred, mae.decoder_norm.forward(x), dtype).to(x.dtype);
        var pred = x[.., 1.., ..];
        var loss = mae.ForwardLoss(images, pred, mask);
        return (loss.MoveToOuterDisposeScope(), pred.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }
}
