/* pretrain_detector.h: the toy world's detector (an OWL-ViT v1 on the toy
 * CLIP's towers) and its quality measurement, for `intenttuner toy
 * pretrain detector` / `toy quality detector` (issue #10).
 *
 * Owns: building the detector from the toy CLIP folder (OUT/clip: its vision
 * tower becomes owlvit.vision_model, its text tower and projection
 * owlvit.text_model / owlvit.text_projection) or, when no CLIP exists yet,
 * from random towers of a tiny config with a BPE vocabulary learnt from toy
 * captions (interim mode, said so in the provenance record); the training
 * step (renders with their part boxes, one-to-one matching of parts to
 * patches, box L1 + GIoU, focal classification against text queries of the
 * parts and image-guided queries from the other images of the batch); the
 * export as an OwlViTForObjectDetection folder OUT/owlvit that
 * vision/owlvit.c loads; and the measurement (top-1 recall at IoU 0.5 per
 * part for text queries and for image-guided queries across images).
 * Does not own the loop, checkpoints or options (pretrain.h), the losses
 * (det_loss.h) or the inference code (vision/owlvit.h). */
#ifndef IT_PRETRAIN_DETECTOR_H
#define IT_PRETRAIN_DETECTOR_H

#include <jansson.h>

#include "base/status.h"
#include "toy/pretrain.h"
#include "vision/owlvit.h"

it_status it_pretrain_detector(it_err *err, const it_pretrain_opts *o);
/* Loads MODEL_DIR/owlvit (o->model_dir, else o->out) and adds the metrics
 * to report: "text_recall" {part: r, ..., "mean": r}, "image_recall" {...}. */
it_status it_quality_detector(it_err *err, const it_pretrain_opts *o, json_t *report);

/* The measurement on n fresh renders of seed (purpose eval) through a
 * loaded or in-training model (m->tok and m->pre must be set). */
it_status it_detector_measure(it_err *err, it_owlvit *m, uint64_t seed, int n, json_t *report);

#endif
