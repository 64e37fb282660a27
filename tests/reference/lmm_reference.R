# Reference fits for alsfrs.lmm: lme4 + lmerTest on the data sets in data/.
#
# Run from the repository root (after `python tests/reference/make_datasets.py`):
#
#     Rscript tests/reference/lmm_reference.R
#
# Writes data/sleepstudy.csv (lme4's real data set) and one JSON file per model
# to lmm_fixtures/: fixed effects (estimate, SE, Satterthwaite df, t, p, Wald
# CI), as.data.frame(VarCorr), theta, sigma, REML criterion, ML deviance,
# logLik, AIC, BIC, isSingular, conditional modes and conditional SDs
# (condVar) of the first groups, and the likelihood-ratio test of the nested
# ML fits. The Python tests read only these files; R is not needed to test.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "tests/reference"
data_dir <- file.path(here, "data")
out_dir <- file.path(here, "lmm_fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

# Tight optimiser tolerances, so the fixtures are the optimum itself.
ctrl <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 1e5),
  check.conv.singular = .makeCC(action = "ignore", tol = 1e-4)
)

write.csv(lme4::sleepstudy, file.path(data_dir, "sleepstudy.csv"), row.names = FALSE)

read_sleepstudy <- function() {
  d <- read.csv(file.path(data_dir, "sleepstudy.csv"), colClasses = c(Subject = "character"))
  d$Subject <- factor(d$Subject)
  d
}

read_cohort <- function(file) {
  d <- read.csv(file.path(data_dir, file), colClasses = c(patient_id = "character"))
  d$sex <- factor(d$sex, levels = c("F", "M"))
  d$onset_site <- factor(d$onset_site, levels = c("spinal", "bulbar", "other"))
  d <- droplevels(d)
  d$patient_id <- factor(d$patient_id)
  d
}

fit_record <- function(name, formula, data, data_file, reml, n_groups_shown = 5) {
  fit <- lmerTest::lmer(as.formula(formula), data = data, REML = reml, control = ctrl)
  co <- summary(fit)$coefficients
  ci <- confint(fit, method = "Wald", parm = "beta_")
  fixed <- data.frame(
    term = rownames(co), estimate = co[, "Estimate"], std_error = co[, "Std. Error"],
    df = co[, "df"], t_value = co[, "t value"], p_value = co[, "Pr(>|t|)"],
    ci_lower = ci[rownames(co), 1], ci_upper = ci[rownames(co), 2],
    row.names = NULL, stringsAsFactors = FALSE
  )
  vc <- as.data.frame(VarCorr(fit))
  vc$var1 <- as.character(vc$var1)
  vc$var2 <- as.character(vc$var2)
  gname <- names(getME(fit, "flist"))[1]
  first <- levels(getME(fit, "flist")[[1]])[seq_len(n_groups_shown)]
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  re <- re[as.character(re$grp) %in% first, ]
  re <- data.frame(group = as.character(re$grp), term = as.character(re$term),
                   condval = re$condval, condsd = re$condsd, stringsAsFactors = FALSE)
  ll <- logLik(fit)
  rec <- list(
    name = name,
    formula = formula,
    data = data_file,
    reml = reml,
    nobs = nobs(fit),
    ngroups = unname(ngrps(fit)[1]),
    grouping = gname,
    fixed_effects = fixed,
    variance_components = vc,
    theta = unname(getME(fit, "theta")),
    sigma = sigma(fit),
    reml_criterion = if (reml) unname(REMLcrit(fit)) else NA,
    deviance = unname(deviance(fit, REML = FALSE)),
    loglik = as.numeric(ll),
    loglik_df = attr(ll, "df"),
    aic = AIC(fit),
    bic = BIC(fit),
    singular = isSingular(fit, tol = 1e-4),
    optimizer_evaluations = fit@optinfo$feval,
    random_effects = re,
    versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    lmerTest = as.character(packageVersion("lmerTest")))
  )
  write_json(rec, file.path(out_dir, paste0(name, ".json")),
             auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null", null = "null")
  invisible(fit)
}

ss <- read_sleepstudy()
fit_record("sleepstudy_reml", "Reaction ~ Days + (Days | Subject)", ss, "sleepstudy.csv", TRUE)
fit_record("sleepstudy_ml", "Reaction ~ Days + (Days | Subject)", ss, "sleepstudy.csv", FALSE)
fit_record("sleepstudy_uncorrelated", "Reaction ~ Days + (Days || Subject)", ss,
           "sleepstudy.csv", TRUE)

cohort_file <- "als_cohort_1000.csv"
if (!file.exists(file.path(data_dir, cohort_file))) cohort_file <- "als_cohort_1000_fallback.csv"
als <- read_cohort(cohort_file)
big <- paste("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx + sex +",
             "onset_site + (months | patient_id)")
small <- paste("alsfrs_r ~ months + anxiolytic + hypnotic + antidepressant + age_at_dx + sex +",
               "onset_site + (months | patient_id)")
fit_record("cohort_reml", big, als, cohort_file, TRUE)
fit_big <- fit_record("cohort_ml", big, als, cohort_file, FALSE)
fit_small <- fit_record("cohort_ml_small", small, als, cohort_file, FALSE)
fit_record("cohort_uncorrelated",
           paste("alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant) + age_at_dx +",
                 "sex + onset_site + (months || patient_id)"),
           als, cohort_file, TRUE)
a <- anova(fit_small, fit_big, refit = FALSE)
write_json(list(chisq = a$Chisq[2], df = a$Df[2], p_value = a[["Pr(>Chisq)"]][2],
                deviance_small = a$deviance[1], deviance_big = a$deviance[2]),
           file.path(out_dir, "cohort_lrt.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE)

ns_file <- "als_near_singular.csv"
if (!file.exists(file.path(data_dir, ns_file))) ns_file <- "als_near_singular_fallback.csv"
ns <- read_cohort(ns_file)
fit_record("near_singular_reml", "alsfrs_r ~ months + (months | patient_id)", ns, ns_file, TRUE)

cat("fixtures written to", out_dir, "\n")
